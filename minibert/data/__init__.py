"""Text -> documents -> sentence pairs -> masked instances -> batches."""

from .batching import collate
from .corpus import generate_classification, generate_corpus, generate_qa, split_documents
from .documents import CORPUS_FORMATS, read_documents, split_sentences
from .glue import GLUE_TASKS, GlueTask
from .instances import Instance, create_pretraining_instances, tokenize_documents, truncate_seq_pair
from .labels import parse_label
from .masking import MaskedTokens, MaskingConfig, exact_count, mask_tokens
from .statistics import MaskingStatistics, masking_statistics
from .t5 import noise_spans, side_by_side, span_corruption, text_to_text, undo_span_corruption
