"""What follows what in a Keras model: the layers that read each layer, through the layers that
only pass values on (dropout, a ReLU), as cross-layer equalization and a float fallback need.

A *kernel layer* is a Dense or Conv2D layer (one weight kernel, channels on its last axis). A
*pass-through* layer keeps each channel's value up to a positive factor: ``f(s x) = s f(x)`` for
``s > 0`` (dropout at inference, ReLU without a cap or threshold, leaky ReLU, a linear
activation, max or average pooling, which work channel by channel). Between two kernel layers
joined by such layers only, a channel can be scaled down in the first and up in the second
without changing the function.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_opt.core.tfkeras import keras

#: Kernel layers whose channels equalization can rescale.
KERNEL_LAYERS = ("Dense", "Conv2D")
#: Activations that commute with a positive scale of their input.
HOMOGENEOUS = ("relu", "linear", "leaky_relu")


def _inbound(layer) -> list:
    """The layers feeding ``layer`` (its first call; a model's layers are called once)."""
    nodes = layer.inbound_nodes
    if not nodes:
        return []
    inbound = nodes[0].inbound_layers
    return list(inbound) if isinstance(inbound, (list, tuple)) else [inbound]


def readers(model) -> dict[str, list]:
    """Layer name -> the layers of ``model`` that read its output."""
    out: dict[str, list] = {layer.name: [] for layer in model.layers}
    for layer in model.layers:
        for source in _inbound(layer):
            if source.name in out:
                out[source.name].append(layer)
    return out


def _activation(layer) -> str:
    return str(keras().activations.serialize(layer.activation)) if hasattr(layer, "activation") else ""


def passes_through(layer) -> bool:
    """True when ``layer`` keeps each channel up to a positive factor (see the module's note)."""
    kind = type(layer).__name__
    if kind in ("Dropout", "LeakyReLU", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D"):
        return True
    if kind == "ReLU":
        cfg = layer.get_config()
        return cfg.get("max_value") is None and not cfg.get("threshold")
    return kind == "Activation" and _activation(layer) in HOMOGENEOUS


def is_kernel_layer(layer) -> bool:
    return type(layer).__name__ in KERNEL_LAYERS and getattr(layer, "groups", 1) == 1


def next_kernel_layers(model, name: str, read: dict[str, list] | None = None) -> list[str]:
    """The kernel layers that read layer ``name``'s output, directly or through pass-through layers."""
    read = readers(model) if read is None else read
    found, todo = [], list(read.get(name, []))
    while todo:
        layer = todo.pop(0)
        if is_kernel_layer(layer):
            found.append(layer.name)
        elif passes_through(layer):
            todo.extend(read[layer.name])
    return found


@dataclass(frozen=True)
class Pair:
    """Two kernel layers where ``second`` alone reads ``first`` (through pass-through layers only)."""

    first: object
    second: object


def equalizable_pairs(model) -> list[Pair]:
    """The pairs of kernel layers whose shared channels can be rescaled without changing the model."""
    read, pairs = readers(model), []
    outputs = set(model.output_names)
    for layer in model.layers:
        if not is_kernel_layer(layer) or _activation(layer) not in HOMOGENEOUS or layer.name in outputs:
            continue
        chain = read[layer.name]
        while len(chain) == 1 and passes_through(chain[0]) and chain[0].name not in outputs:
            chain = read[chain[0].name]
        if len(chain) == 1 and is_kernel_layer(chain[0]) and type(chain[0]) is type(layer):
            pairs.append(Pair(layer, chain[0]))
    return pairs
