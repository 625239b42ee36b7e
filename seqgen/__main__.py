"""`python -m seqgen` (and `torchrun -m seqgen`) run the CLI."""
from .cli import main

main()
