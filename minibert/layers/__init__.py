"""BERT's building blocks, each a `*_forward` / `*_backward` pair of plain functions.

Every forward returns `(out, cache)`; the matching backward takes `(dout, cache)` and
returns the gradient of every input in the order the forward took them. A gradient is
named after what it differentiates (`dx` for `x`, `dW` for `W`) and has its shape.

Dimension legend used in every docstring and shape comment:

    B  batch size                   T  sequence length
    H  hidden size                  A  attention heads
    D  head size, H // A            F  intermediate (feed-forward) size
    V  vocabulary size              P  masked predictions per sequence
    N  any number of leading rows   C  classes (for a loss)

Layers work in whatever float dtype they are given (float32 for training, float64 for
gradient checks) and on whatever array module owns their inputs (numpy or cupy).
"""

from .activations import (
    gelu_backward,
    gelu_forward,
    gelu_tanh_backward,
    gelu_tanh_forward,
    tanh_backward,
    tanh_forward,
)
from .attention import attention_backward, attention_forward, padding_mask_bias
from .dropout import dropout_backward, dropout_forward, dropout_mask
from .embedding import embedding_backward, embedding_forward
from .layernorm import layernorm_backward, layernorm_forward
from .linear import linear_backward, linear_forward
from .losses import cross_entropy_backward, cross_entropy_forward
from .softmax import softmax_backward, softmax_forward

ACTIVATIONS = {
    "gelu": (gelu_forward, gelu_backward),
    "gelu_new": (gelu_tanh_forward, gelu_tanh_backward),
}
