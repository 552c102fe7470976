"""A character-level tokenizer that saves as an ordinary Hugging Face `tokenizer.json`.

One token per character, vocabulary = the sorted set of characters in the corpus (the tiny SQL GPT paper's
scheme). It is built with the `tokenizers` library, so `AutoTokenizer.from_pretrained` loads it back
with no ftdist code and no `trust_remote_code`.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast


def build_char_tokenizer(text: str) -> PreTrainedTokenizerFast:
    """A tokenizer whose vocabulary is every distinct character of `text`, in sorted order."""
    vocab = {char: index for index, char in enumerate(sorted(set(text)))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every char, \n too
    backend.decoder = decoders.Fuse()  # join characters back without spaces
    return PreTrainedTokenizerFast(tokenizer_object=backend, clean_up_tokenization_spaces=False)
