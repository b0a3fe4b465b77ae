"""SEW-ResNet key layouts found in the wild, written from torchvision-style keys (shared test helper)."""
from __future__ import annotations

import re


def sew_original_layout(state_dict):
    """Rename torchvision-style keys to the original SEW release's SeqToANNContainer layout (convN.module.0 / .1)."""
    out = {}
    for key, value in state_dict.items():
        key = re.sub(r"(^|\.)conv(\d)\.", r"\1conv\2.module.0.", key)
        key = re.sub(r"(^|\.)bn(\d)\.", r"\1conv\2.module.1.", key)
        key = re.sub(r"downsample\.([01])\.", r"downsample.0.module.\1.", key)
        out[key] = value
    return out


def sew_container_layout(state_dict):
    """Rename torchvision-style keys to the later SeqToANNContainer layout (convN.0 / convN.1)."""
    out = {}
    for key, value in state_dict.items():
        key = re.sub(r"(^|\.)conv(\d)\.", r"\1conv\2.0.", key)
        key = re.sub(r"(^|\.)bn(\d)\.", r"\1conv\2.1.", key)
        key = re.sub(r"downsample\.([01])\.", r"downsample.0.\1.", key)
        out[key] = value
    return out
