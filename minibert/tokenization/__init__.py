"""Text -> tokens: BasicTokenizer, WordPiece, and the WordPiece/BPE vocabulary trainers."""

from .basic import BasicTokenizer
from .trainers import bpe_encode, bpe_merge, get_stats, merge_vocab, train_bpe, train_wordpiece
from .wordpiece import SPECIAL_TOKENS, WordPieceTokenizer, wordpiece_tokenize
