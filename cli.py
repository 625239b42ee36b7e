"""Run seqgen from a checkout without installing it: `python cli.py --help`."""
from seqgen.cli import main

if __name__ == "__main__":
    main()
