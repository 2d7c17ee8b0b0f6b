"""Shared test set-up: one torch thread (2-core machines), and the phantom cache in a temp dir."""

import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _phantom_cache(tmp_path_factory):
    """Keep the phantom cache of a test run out of the user's cache folder."""
    if "IMSE_STUDY_CACHE" not in os.environ:
        os.environ["IMSE_STUDY_CACHE"] = str(tmp_path_factory.mktemp("imse_cache"))
    yield
