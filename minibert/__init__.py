"""minibert: BERT from scratch in NumPy, every forward and backward pass written by hand."""

from .backend import BackendError, get_backend, set_backend, to_host
from .config import PRESETS, BertConfig
from .gradcheck import gradcheck, relative_error
from .model import BertForPreTraining, BertModel, BertOutput
from .heads import BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification
from .lm import BertLMHeadModel, ElmoFeatures
from .hf import to_hf_state_dict
from .pretrained import minilm_path
from .tokenization import WordPieceTokenizer, train_bpe, train_wordpiece
from .data import (
    MaskingConfig,
    collate,
    create_pretraining_instances,
    generate_classification,
    generate_corpus,
    generate_qa,
    mask_tokens,
    masking_statistics,
    read_documents,
)

__version__ = "0.1.0"


def source_fingerprint() -> str:
    """A short hash of minibert's own source files: notebooks print it, and a test checks that
    the outputs committed with them were produced by the code as it is now."""
    import hashlib
    from pathlib import Path

    root = Path(__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]
