import importlib.util

import pytest

from lira.config import AgentParams
from lira.translate.agents import TranslationRequest, build_backend

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


@pytest.mark.skipif(HAS_VLLM and _cuda(), reason="vllm and a GPU are present: the error path can't be hit")
def test_without_vllm_or_gpu_the_error_says_what_to_do():
    with pytest.raises(RuntimeError, match=r"gpu.*extra|openai"):
        build_backend(AgentParams(name="v", backend="vllm", model="some/model"))


@pytest.mark.gpu
@pytest.mark.skipif(not (HAS_VLLM and _cuda()), reason="needs vllm (the `gpu` extra) and a CUDA GPU")
def test_vllm_generates_one_output_per_request():  # pragma: no cover - GPU workers only
    import os

    model = os.environ.get("LIRA_VLLM_TEST_MODEL")
    if not model:
        pytest.skip("set LIRA_VLLM_TEST_MODEL to a small local chat model")
    backend = build_backend(AgentParams(name="v", backend="vllm", model=model, max_new_tokens=16))
    outs = backend.translate([TranslationRequest("a", "vi", "Xin chào"), TranslationRequest("b", "vi", "Cảm ơn")])
    assert len(outs) == 2 and all(o.raw is not None for o in outs)


def test_parallelism_reaches_vllms_engine_arguments():
    from lira.translate.vllm_backend import engine_args

    one = engine_args(AgentParams(name="v", backend="vllm", model="m"), seed=3)
    assert one == {"model": "m", "seed": 3, "tensor_parallel_size": 1}
    big = engine_args(AgentParams(name="v", backend="vllm", model="m", tensor_parallel_size=4, data_parallel_size=2), seed=3)
    assert big == {"model": "m", "seed": 3, "tensor_parallel_size": 4, "data_parallel_size": 2}


@pytest.mark.parametrize("backend", ["openai", "transformers", "simulated"])
def test_parallelism_is_refused_outside_vllm(backend):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="tensor_parallel_size"):
        AgentParams(name="v", backend=backend, model="m", tensor_parallel_size=2)
