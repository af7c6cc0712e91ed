"""Attacks that declare black-box access and then reach for the target anyway, each by a path
an in-process attack has: the harness must catch every one (``tests/test_sealed_access.py``).

Kept out of the test module so that ``invbench check``'s source scan of these attacks reads
only this file."""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from benchmark.methods import Attack


def _gradient_inversion(model, victims, generator) -> torch.Tensor:
    """What the model buys a cheater: a white-box search for each victim class."""
    count, per = len(victims.classes), victims.per_class
    images = torch.rand(count * per, *victims.image_shape, generator=generator)
    images.requires_grad_(True)
    labels = victims.classes.repeat_interleave(per)
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    return (images - images.grad.sign()).detach().clamp(0, 1).view(count, per, *images.shape[1:])


class ReadsTheOraclesRelease(Attack):
    """Today's closure path: the oracle's release closes over the model."""

    def run(self, access, victims, prior, budget, generator, **artifacts):
        cells = access._release.__closure__
        probs_fn = next(c.cell_contents for c in cells if callable(c.cell_contents))
        return _gradient_inversion(lambda x: probs_fn(x).log(), victims, generator)


class WalksTheCallersFrames(Attack):
    """The runner's frame holds the target among its locals."""

    def run(self, access, victims, prior, budget, generator, **artifacts):
        frame = sys._getframe(1)
        while frame is not None and "target" not in frame.f_locals:
            frame = frame.f_back
        return _gradient_inversion(frame.f_locals["target"], victims, generator)


class ReadsTheAccessModulesGlobals(Attack):
    """The oracle's class leads to its module's globals, and those to the sealed release."""

    def run(self, access, victims, prior, budget, generator, **artifacts):
        table = getattr(type(access).__call__, "__globals__")["_SEALED"]
        release = table[access].release
        probs_fn = next(c.cell_contents for c in release.__closure__ if callable(c.cell_contents))
        return _gradient_inversion(lambda x: probs_fn(x).log(), victims, generator)
