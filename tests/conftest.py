import os
import sys

# Offline: nothing may be fetched from the Hub during tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The processes the tests start (the custom-code checks without the package, the training scripts) run on one thread
# like this one (below): tests that compare their outputs bit for bit with this process's need the same kernels, and
# with two threads a loaded machine's parallel CPU kernels may split the same sums differently.
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402
import torch  # noqa: E402
from tiny import tiny_processor, tiny_tokenizer  # noqa: E402

# Tiny models spend their time in thread synchronisation, not arithmetic; one thread is faster and keeps the
# multi-process tests from oversubscribing the cores.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tokenizer():
    """A CLIP tokenizer trained offline on the tiny test vocabulary."""
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def processor(tokenizer):
    """A KnowledgeCLIPProcessor with the tiny tokenizer, 32-pixel images and the test relation vocabulary."""
    return tiny_processor(tokenizer)
