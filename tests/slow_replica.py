"""A serve replica whose scheduler steps take 50 ms, so that tests/test_ray_serve.py can kill it mid-answer. A module
of its own: Ray's workers import it by name (the test cluster puts this checkout on their path)."""

import time

from tritlm.cluster.serve import Replica

STEP_SECONDS = 0.05


class SlowReplica(Replica):
    async def __init__(self, *args):
        await super().__init__(*args)
        forward = self.model.forward

        def slow_forward(seqs, tokens, logit_rows=None):
            time.sleep(STEP_SECONDS)
            return forward(seqs, tokens, logit_rows)

        self.model.forward = slow_forward
