"""Fixtures shared by the server test files: one fake-reasoner server per module, and a client."""

from __future__ import annotations

import openai
import pytest

from kever.serve.testing import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("serve") / "conv.sqlite"
    with ServerProcess(["--preset", "fake-reasoner"], db=db) as srv:
        yield srv


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="none", max_retries=0, timeout=60)
