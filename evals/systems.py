"""The systems an evaluation can run: the reasoner's baselines/ablations, plus ``majority`` and ``fake``.

``build_system(preset, system, ablate)`` is the one place a system is constructed; the
reasoner is imported lazily so the harness (and the ``majority`` baseline) works without it.
Everything returned has ``explain_many(images, labels=..., rationale=...)`` and ``models``.
"""

from __future__ import annotations

import importlib
from typing import Callable, Iterable, Protocol

from kever.agent.config import ABLATIONS  # the reasoner's own list: one source
from kever.errors import ConfigError, ModelUnavailable

#: Systems the reasoner implements (``Reasoner.from_preset(..., system=NAME)``).
REASONER_SYSTEMS = ("full", "perception-only", "knowledge-only", "clip-zeroshot", "vlm-only")
#: Baselines beside the agent (kever.agent.baselines): the naive zero-shot recipe, EmoLex over
#: the same words, the dev base rates, and the supervised probe (trained on dev labels).
BASELINE_SYSTEMS = ("text-zeroshot", "lexicon", "prior", "probe")
#: Systems the harness implements itself: the majority (split prior) baseline and the test double.
HARNESS_SYSTEMS = ("majority", "fake")
SYSTEMS = REASONER_SYSTEMS + BASELINE_SYSTEMS + HARNESS_SYSTEMS


class System(Protocol):
    models: dict[str, str]

    def explain_many(self, images: Iterable, labels=None, rationale: bool = False) -> list: ...


class MajoritySystem:
    """Baseline without a model: always the prior distribution, labelled with its top class.

    The prior is the mean ground-truth distribution of the split being evaluated (the only
    split the dev data has), so it is an optimistic baseline: it knows the test prior.
    """

    def __init__(self, prior: dict[str, float]):
        if not prior:
            raise ConfigError("the majority baseline needs a label prior")
        total = sum(prior.values()) or 1.0
        self.prior = {k: v / total for k, v in prior.items()}
        self.label = max(self.prior, key=self.prior.get)
        self.models = {"system": "majority-prior"}

    def explain_many(self, images: Iterable, labels=None, rationale: bool = False) -> list:
        from kever.agent.judgment import Judgment

        out = []
        for im in images:
            out.append(Judgment(
                label=self.label, scores=dict(self.prior), confidence=self.prior[self.label],
                valence=0.0, arousal=0.5,
                rationale=f"Baseline: always the prior's most frequent label ({self.label})." if rationale else None,
                rationale_kind="template" if rationale else "none",
                models=dict(self.models), label_set="custom", image=str(im)))
        return out


def build_system(preset: str = "offline", system: str = "full", ablate: Iterable[str] = (), *,
                 prior: dict[str, float] | None = None) -> System:
    ablate = tuple(sorted(set(ablate)))
    bad = [a for a in ablate if a not in ABLATIONS]
    if bad:
        raise ConfigError(f"unknown ablation(s) {', '.join(bad)}", f"choose from {', '.join(ABLATIONS)}")
    if system not in SYSTEMS:
        raise ConfigError(f"unknown system {system!r}", f"choose from {', '.join(SYSTEMS)}")
    if system == "majority":
        return MajoritySystem(prior or {})
    if system == "fake":
        return fake_system()
    if system in BASELINE_SYSTEMS:
        if ablate:
            raise ConfigError(f"the {system} baseline has no parts to ablate")
        from kever.agent.baselines import build_baseline

        return build_baseline(system, preset)
    try:
        mod = importlib.import_module("kever.agent.reasoner")
        reasoner_cls = mod.Reasoner
    except ImportError as e:
        raise ModelUnavailable(f"the reasoner (kever.agent.reasoner) cannot be imported: {e}",
                               "use --system majority, or install kever with its agent") from e
    try:
        return reasoner_cls.from_preset(preset, ablate=ablate, system=system)
    except ImportError as e:
        raise ModelUnavailable(f"the reasoner's preset {preset!r} needs a module that cannot be imported: {e}",
                               "install the missing extra, or use --system majority") from e


def labels_argument(label_set: str, labels: list[str]) -> str | list[str]:
    """What the harness passes as ``labels=``: the set's name when the reasoner knows it, else the list."""
    from kever.agent.labels import NAMED

    return label_set if label_set in NAMED else list(labels)


def fake_system():
    """The shipped FakeReasoner, taught the harness's named label sets (a test double, never for real answers)."""
    from kever.agent.fake_reasoner import FakeReasoner

    from kever.evals.labelsets import label_sets

    class HarnessFake(FakeReasoner):
        def _labels(self, labels):
            if isinstance(labels, str) and labels in label_sets():
                return list(label_sets()[labels])
            return super()._labels(labels)

    return HarnessFake()


Factory = Callable[..., System]


def resolve_factory(spec: str | None) -> Factory:
    """``None`` -> the default (``build_system``); ``"module:attr"`` -> that callable.

    A factory is called as ``factory(preset=..., system=..., ablate=..., prior=...)``.
    """
    if not spec:
        return build_system
    module, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot import system factory {spec!r}: {e}") from e
