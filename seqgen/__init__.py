"""seqgen: train recurrent sequence models on text and generate from them."""

__version__ = "0.1.0"
