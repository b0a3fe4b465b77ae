"""The ANN side of a conversion: trace a trained network, fold batch norm, find its activations.

A network is traced with :mod:`torch.fx` into a graph of module calls and functions. Between two
activations everything must be linear (or affine) in the activations, because an integrate-and-fire
neuron that replaces an activation turns its input current into a spike train whose rate stands for
the activation: a convolution (or a transposed one), a linear layer, batch norm in evaluation mode, average pooling,
padding, residual additions, concatenations, flattening and dropout (identity in evaluation mode)
all commute with the rate code. Max pooling does not (the max of spike trains is not the max of
rates) and is replaced at run time by the exact max of the inputs' running spike counts
(:class:`~cortexsnn.conversion.modules.GatedMaxPool`). Anything else (a sigmoid, a
product of two activations, ...) cannot be mapped and is refused with its name and type.

Each *call site* of an activation becomes its own neuron layer, even when a network calls one
module object at several places (EfficientNet-Lite's blocks call one ``ReLU6`` twice): the tracer
sees each call as its own node.
"""
from __future__ import annotations

import copy
import logging
import operator
from dataclasses import dataclass
import torch
from torch import fx, nn
from torch.nn import functional as F

from cortexsnn.conversion.errors import ConversionError

__all__ = ["Activation", "trace", "fold_batch_norm", "fold_padding", "find_activations", "register_linear_function",
           "register_linear_module"]

log = logging.getLogger(__name__)

#: Modules kept whole by the tracer (their forward is linear in the input, or an activation).
_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_LINEAR_MODULES = (
    *_CONVOLUTIONS, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
    nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d, nn.Flatten, nn.Dropout, nn.Dropout2d, nn.Identity, nn.ZeroPad2d,
    nn.ConstantPad2d,
)
_MAX_POOL_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_ACTIVATION_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardtanh)
_LINEAR_FUNCTIONS = {
    operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub, operator.neg, torch.neg, torch.cat, torch.concat, torch.flatten, F.adaptive_avg_pool2d,
    F.avg_pool2d, F.pad, F.dropout, F.linear, F.conv2d, F.conv_transpose2d, operator.getitem, getattr, torch.mean,
}
#: Functions of the zoo that are linear in their tensor argument (padding), extended by
#: :func:`register_linear_function`.
_EXTRA_LINEAR_FUNCTIONS: set = set()


def register_linear_function(fn) -> None:
    """Declare a function (kept whole by ``torch.fx.wrap``) linear in its tensor input, e.g. a padding
    helper, so that the converter carries it between neurons."""
    _EXTRA_LINEAR_FUNCTIONS.add(fn)


#: Modules linear in their tensor inputs, kept whole by the tracer: see :func:`register_linear_module`.
_EXTRA_LINEAR_MODULES: set[type] = set()


def register_linear_module(cls: type) -> type:
    """Declare a module class linear in its tensor inputs (e.g. the mean of several tensors): the
    tracer keeps its calls whole (so that they can be recorded) and the converter carries them
    between neurons. Returns ``cls`` (usable as a class decorator)."""
    _EXTRA_LINEAR_MODULES.add(cls)
    return cls


def _zoo_linear_functions() -> None:
    from cortexsnn.models.efficientnet_lite import pad_same

    register_linear_function(pad_same)


_LINEAR_METHODS = {"view", "reshape", "flatten", "size", "mean", "contiguous", "squeeze", "unsqueeze", "add",
                   "add_", "sub", "sub_", "neg", "permute", "transpose"}
_ACTIVATION_FUNCTIONS = {F.relu, torch.relu, torch.relu_, F.relu6, F.hardtanh, torch.clamp, torch.clip}
_ACTIVATION_METHODS = {"relu", "relu_", "clamp", "clamp_", "clip"}


@dataclass(frozen=True)
class Activation:
    """One activation call site of the traced network.

    Attributes:
        node: the fx node's name (stable: the tracer names it after the module path).
        upper: the activation's upper bound (6 for ReLU6, ``None`` for ReLU).
    """

    node: str
    upper: float | None


class _Tracer(fx.Tracer):
    """Keeps every linear module, activation and pooling whole, whatever package defines it.

    A ``Conv2d`` subclass with TensorFlow "SAME" padding (EfficientNet ports) stays one node, so
    batch norm can be folded into it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.module_outputs: dict[str, fx.Node] = {}
        self.module_calls: dict[str, int] = {}

    def call_module(self, m: nn.Module, forward, args, kwargs):
        out = super().call_module(m, forward, args, kwargs)
        if isinstance(out, fx.Proxy):  # the last call of a module wins (a module called twice: its last use)
            path = self.path_of_module(m)
            self.module_outputs[path] = out.node
            self.module_calls[path] = self.module_calls.get(path, 0) + 1
        return out

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (*_LINEAR_MODULES, *_MAX_POOL_MODULES, *_ACTIVATION_MODULES, *_EXTRA_LINEAR_MODULES)):
            return True
        return super().is_leaf_module(m, qualname)


def trace(model: nn.Module) -> tuple[fx.GraphModule, dict[str, str]]:
    """A traced copy of ``model`` in evaluation mode (the original is left untouched), and the name of
    the node holding each module's output (``{module path: node name}``; the last call of a module
    called several times). ``gm.meta["module_calls"]`` counts the calls of each module path."""
    model = copy.deepcopy(model).eval()
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # fx raises many types on data-dependent control flow
        raise ConversionError(
            f"{type(model).__name__} cannot be traced by torch.fx ({type(exc).__name__}: "
            f"{(str(exc).splitlines() or [''])[0][:300]}); the converter needs a forward without data-dependent "
            "control flow: wrap such parts in a module the tracer keeps whole, or convert the submodule "
            "that holds the network's layers") from exc
    outputs = {path: node.name for path, node in tracer.module_outputs.items()}
    gm = fx.GraphModule(model, graph, class_name=type(model).__name__)
    gm.meta["module_calls"] = dict(tracer.module_calls)
    return gm, outputs


def _module(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(node.target) if node.op == "call_module" else None


def fold_batch_norm(gm: fx.GraphModule) -> dict[str, str]:
    """Fold every batch norm that directly follows a convolution (transposed or not) or linear layer into it.

    The convolution must feed only the batch norm. A batch norm that follows something else stays
    (in evaluation mode it is an affine map, which the rate code carries). A layer called at several
    places (weight sharing, e.g. an unrolled recurrent network) is folded once, in place, when every
    call is followed by the same batch-norm module; otherwise each call site gets its own folded copy.
    Returns ``{removed batch-norm node: the node that now holds its output}``.
    """
    folded: dict[str, str] = {}
    shared: dict[str, str] = {}  # layer folded in place -> the batch norm folded into it
    for node in list(gm.graph.nodes):
        bn = _module(gm, node)
        if not isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            continue
        source = node.args[0]
        layer = _module(gm, source) if isinstance(source, fx.Node) else None
        if not isinstance(layer, (*_CONVOLUTIONS, nn.Linear)) or len(source.users) != 1:
            continue
        if shared.get(source.target) != node.target:
            calls = [n for n in gm.graph.nodes if n.op == "call_module" and n.target == source.target]
            if all(_only_user_calls(n, node.target) for n in calls):
                _fold_into(layer, bn)
                shared[source.target] = node.target
            else:  # the layer is called elsewhere without this batch norm: this call site gets a copy to fold into
                own = f"{source.target.replace('.', '_')}_{node.name}"
                gm.add_submodule(own, copy.deepcopy(layer))
                source.target = own
                _fold_into(gm.get_submodule(own), bn)
        node.replace_all_uses_with(source)
        folded[node.name] = source.name
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return folded


def _only_user_calls(node: fx.Node, target: str) -> bool:
    """Whether ``node``'s only user is a call of the module ``target``."""
    users = list(node.users)
    return len(users) == 1 and users[0].op == "call_module" and users[0].target == target


@torch.no_grad()
def _fold_into(layer: nn.Module, bn: nn.Module) -> None:
    if not bn.track_running_stats or bn.running_var is None:
        raise ConversionError(f"batch norm after {type(layer).__name__} has no running statistics; "
                              "convert a network trained with track_running_stats=True")
    scale = bn.running_var.add(bn.eps).rsqrt()
    if bn.affine:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.affine:
        shift = shift + bn.bias
    weight = layer.weight
    layer.weight = nn.Parameter(weight * _output_channel_scale(layer, scale))
    bias = layer.bias if layer.bias is not None else torch.zeros_like(scale)
    layer.bias = nn.Parameter(bias * scale + shift)


def _output_channel_scale(layer: nn.Module, scale: torch.Tensor) -> torch.Tensor:
    """``scale`` (one factor per output channel) shaped to multiply ``layer.weight``.

    A convolution's or linear layer's weight is ``[out, in / groups, *kernel]``; a transposed
    convolution's is ``[in, out / groups, *kernel]``, where input channel ``i`` (of group
    ``i // (in / groups)``) feeds output channels ``group * out / groups + j``.
    """
    weight = layer.weight
    kernel = [1] * (weight.dim() - 2)
    if not isinstance(layer, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        return scale.reshape(-1, 1, *kernel)
    groups = layer.groups
    per_group_in, per_group_out = weight.shape[0] // groups, weight.shape[1]
    grouped = scale.reshape(groups, 1, per_group_out).expand(groups, per_group_in, per_group_out)
    return grouped.reshape(weight.shape[0], per_group_out, *kernel)


def fold_padding(gm: fx.GraphModule) -> int:
    """Move symmetric zero padding (``nn.ZeroPad2d``, TensorFlow "SAME" ports) into the convolution
    after it, which pads without writing a padded copy of its input. Returns the number folded."""
    folded = 0
    for node in list(gm.graph.nodes):
        pad = _module(gm, node)
        if not isinstance(pad, (nn.ZeroPad2d, nn.ConstantPad2d)) or (isinstance(pad, nn.ConstantPad2d)
                                                                        and pad.value != 0):
            continue
        left, right, top, bottom = pad.padding
        users = list(node.users)
        conv = _module(gm, users[0]) if len(users) == 1 else None
        if (left != right or top != bottom or not isinstance(conv, nn.Conv2d) or conv.padding_mode != "zeros"
                or isinstance(conv.padding, str) or any(conv.padding)):
            continue
        conv.padding = (top, left)
        node.replace_all_uses_with(node.args[0])
        gm.graph.erase_node(node)
        folded += 1
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return folded


def _argument(node: fx.Node, position: int, name: str, default: float | None) -> float | None:
    """A numeric argument of a call (positional or keyword); a tensor-valued bound is refused."""
    value = node.args[position] if len(node.args) > position else node.kwargs.get(name, default)
    if value is not None and not isinstance(value, (int, float)):
        raise ConversionError(f"{node.name} ({node.target}) has a non-constant bound {name}={value}; only constant "
                              "clamps convert to IF neurons")
    return None if value is None else float(value)


def _activation_bounds(gm: fx.GraphModule, node: fx.Node) -> tuple[bool, float | None]:
    """``(is_activation, upper bound)``; raises for a clamp that is not a ReLU with a cap."""
    module = _module(gm, node)
    if module is not None:
        if isinstance(module, nn.ReLU6):
            return True, 6.0
        if isinstance(module, nn.ReLU):
            return True, None
        if isinstance(module, nn.Hardtanh):
            if module.min_val != 0.0:
                raise ConversionError(f"layer {node.target!r} (Hardtanh min_val={module.min_val}) is not a ReLU "
                                      "with an upper bound; only Hardtanh(0, max) converts to IF neurons")
            return True, float(module.max_val)
        return False, None
    target = node.target
    if node.op == "call_function" and target in _ACTIVATION_FUNCTIONS:
        if target in (F.relu, torch.relu, torch.relu_):
            return True, None
        if target is F.relu6:
            return True, 6.0
        if target is F.hardtanh:
            low = _argument(node, 1, "min_val", -1.0)
            high = _argument(node, 2, "max_val", 1.0)
        else:
            low, high = _argument(node, 1, "min", None), _argument(node, 2, "max", None)
        return _clamp_bounds(node, low, high)
    if node.op == "call_method" and target in _ACTIVATION_METHODS:
        if target in ("relu", "relu_"):
            return True, None
        return _clamp_bounds(node, _argument(node, 1, "min", None), _argument(node, 2, "max", None))
    return False, None


def _clamp_bounds(node: fx.Node, low: float | None, high: float | None) -> tuple[bool, float | None]:
    if low != 0.0:
        raise ConversionError(f"{node.name} ({node.target}) clamps below at {low}, not at 0: only ReLU-like "
                              "clamps (min=0, optional max) convert to IF neurons")
    return True, high


def find_activations(gm: fx.GraphModule) -> list[Activation]:
    """Every activation call site in execution order; raises for a node the rate code cannot carry."""
    _zoo_linear_functions()
    found: list[Activation] = []
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        is_activation, upper = _activation_bounds(gm, node)
        if is_activation:
            found.append(Activation(node.name, upper))
            continue
        _check_linear(gm, node)
    if not found:
        raise ConversionError("the network has no ReLU / ReLU6 / clamp activation: there is nothing to turn into "
                              "spiking neurons")
    return found


def _check_linear(gm: fx.GraphModule, node: fx.Node) -> None:
    module = _module(gm, node)
    if module is not None:
        if isinstance(module, (*_LINEAR_MODULES, *_MAX_POOL_MODULES, *_EXTRA_LINEAR_MODULES)):
            return
        raise ConversionError(f"layer {node.target!r} of type {type(module).__name__} cannot be converted to "
                              "spiking neurons: only convolutions, linear layers, batch norm, ReLU / ReLU6 / "
                              "clamp, average and max pooling, padding, dropout, additions and concatenations are "
                              "supported")
    if node.op == "call_function" and (node.target in _LINEAR_FUNCTIONS or node.target in _EXTRA_LINEAR_FUNCTIONS):
        return
    if not node.users and node.op == "call_function":
        return  # an input check whose result nothing reads cannot change the output
    if node.op == "call_method" and node.target in _LINEAR_METHODS:
        return
    if node.op == "call_function" and node.target in (operator.mul, torch.mul) and any(
            not isinstance(a, fx.Node) for a in node.args):
        return  # scaling by a constant is linear
    if node.op == "call_function" and node.target in (operator.truediv, torch.div) and len(node.args) > 1 and \
            not isinstance(node.args[1], fx.Node) and node.kwargs.get("rounding_mode") is None:
        return  # so is dividing by one (not a constant divided by an activation)
    what = getattr(node.target, "__name__", str(node.target))
    raise ConversionError(f"operation {node.name!r} ({node.op} {what}) is not linear in the activations and cannot "
                          "be carried by a rate code (e.g. a sigmoid gate or a product of two activations)")
