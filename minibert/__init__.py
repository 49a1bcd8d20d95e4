"""minibert: BERT from scratch in NumPy, every forward and backward pass written by hand."""

from .backend import BackendError, get_backend, set_backend, to_host
from .config import PRESETS, BertConfig
from .gradcheck import gradcheck, relative_error
from .model import BertForPreTraining, BertModel, BertOutput

__version__ = "0.1.0"
