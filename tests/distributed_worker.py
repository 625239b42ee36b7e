"""`seqgen` as torchrun starts it, plus one thing for the tests: each rank's weights at the end
of a run are saved to $SEQGEN_TEST_WEIGHTS/rank<R>.safetensors, so a test can compare them."""

import os

from safetensors.torch import save_file

from seqgen import cli
from seqgen.train import Trainer

_run = Trainer.run


def run_and_save_weights(self, *args, **kwargs):
    best = _run(self, *args, **kwargs)
    save_file(self.model.state_dict(), os.path.join(os.environ["SEQGEN_TEST_WEIGHTS"], f"rank{self.world.rank}.safetensors"))
    return best


Trainer.run = run_and_save_weights
cli.main()
