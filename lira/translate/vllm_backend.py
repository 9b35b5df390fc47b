"""Offline batched generation with vLLM on a GPU worker (``vllm.LLM(...).chat``).

vLLM pins its own torch/transformers and needs CUDA, so it never lives in the main environment:
install the ``gpu`` extra in a separate environment on a GPU worker, or run a vLLM server and point
an ``openai`` agent at it (``base_url: http://host:8000/v1``) - usually the simpler route.
"""

from __future__ import annotations

from typing import Any

from lira.translate.agents import ChatBackend
from lira.translate.prompts import Messages

_HOWTO = (
    "the vllm backend needs vLLM and a CUDA GPU: install the `gpu` extra (`pip install -e .[gpu]`) "
    "in its OWN environment on a GPU worker (vLLM pins its own torch), or serve the model with "
    "`vllm serve MODEL` and use an `openai` agent with base_url pointing at that server"
)


def check_available() -> None:
    """Raise a RuntimeError saying what to do when vLLM or CUDA is missing."""
    try:
        import vllm  # noqa: F401
    except ImportError as e:
        raise RuntimeError(f"vllm is not importable ({e}); {_HOWTO}") from None
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(f"no CUDA device is visible; {_HOWTO}")


def engine_args(agent: Any, seed: int) -> dict[str, Any]:
    """vllm.LLM's arguments for an agent: vLLM shards the model (tensor parallel) and replicates it
    (data parallel) itself; data_parallel_size is left out at 1 so older vLLMs, which lack it, work."""
    args: dict[str, Any] = {"model": agent.model, "seed": seed, "tensor_parallel_size": agent.tensor_parallel_size}
    if agent.data_parallel_size > 1:
        args["data_parallel_size"] = agent.data_parallel_size
    return args


class VLLMBackend(ChatBackend):
    name = "vllm"

    def __init__(self, agent: Any, **kwargs: Any) -> None:
        super().__init__(agent, **kwargs)
        check_available()
        from vllm import LLM

        self.llm = LLM(**engine_args(agent, self.seed))

    def generate_chat(self, messages: list[Messages], *, response_format: dict | None = None,
                      max_new_tokens: int | None = None) -> list[str | None]:
        from vllm import SamplingParams

        sampling = SamplingParams(
            temperature=self.agent.temperature,
            max_tokens=max_new_tokens or self.agent.max_new_tokens,
            seed=self.seed if self.agent.temperature > 0 else None,
        )
        # vLLM batches (and schedules) the whole list itself.
        results = self.llm.chat(messages, sampling, use_tqdm=False)
        return [r.outputs[0].text if r.outputs else None for r in results]

    def close(self) -> None:
        self.llm = None
