"""The zoo's shared initialiser (`init_weights_`) gives the weights each family gave with its own loop.

The fingerprints were computed at commit 00f1a0a, before the five per-family loops became one
function: a change in the order of initialisation (which would move the random stream) fails here.
"""
from __future__ import annotations

import hashlib

import pytest
import torch

from cortexsnn.models import create_model

FINGERPRINTS = {
    "sew_resnet18": "31c7602f43fb64ce",
    "cornet_rt": "aa36a3ae143658c2",
    "lorafb_cnet18": "5aa42f9277b68ce9",
    "spiking_mobilenet": "e242c3a1746165bb",
    "sew_resnext11": "45449dcc90a19f77",
    "efficientnet_lite0": "be0e484e7e59eb0d",
}


def _fingerprint(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        digest.update(name.encode())
        digest.update(value.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_initial_weights_unchanged(name):
    torch.manual_seed(0)
    assert _fingerprint(create_model(name)) == FINGERPRINTS[name]
