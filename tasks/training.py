"""Training loops shared by the task families (minibatch classifiers)."""

from __future__ import annotations

from typing import Callable

import torch

from benchmark.devices import module_device, to_device
from benchmark.progress import progress_bar


def fit_classifier(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    step_loss: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
    weight_decay: float = 0.0,
    flip: bool = False,
    desc: str = "train",
    progress: bool = True,
    epoch_start: Callable[[int, int], None] | None = None,
) -> None:
    """Adam on shuffled minibatches (shuffle order from the global torch seed) over the
    trainable parameters. ``step_loss(model, images, labels)`` is the training objective (a
    defense's); ``flip`` mirrors half of each batch horizontally (face tasks);
    ``epoch_start(epoch, epochs)`` is told each epoch (a defense's schedule).

    The data goes to the model's device once (pinned, asynchronous on a GPU); the loop then
    reads nothing back from it (no host-device synchronisation per step)."""
    device = module_device(model)
    inputs, labels = to_device(inputs, device), to_device(labels, device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = (len(inputs) + batch_size - 1) // batch_size
    model.train()
    with progress_bar(epochs * steps_per_epoch, desc, progress) as bar:
        for epoch in range(epochs):
            if epoch_start is not None:
                epoch_start(epoch, epochs)
            order = torch.randperm(len(inputs), device=device)
            for start in range(0, len(inputs), batch_size):
                batch = order[start : start + batch_size]
                images = inputs[batch]
                if flip:
                    images = torch.where(
                        torch.rand(len(batch), 1, 1, 1, device=device) < 0.5,
                        images.flip(-1),
                        images,
                    )
                loss = step_loss(model, images, labels[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                bar.update()
    model.eval()


@torch.no_grad()
def predict_in_batches(
    fn: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    batch_size: int = 512,
    device: torch.device | None = None,
) -> torch.Tensor:
    """``fn`` over ``inputs`` in chunks; with ``device`` each chunk is copied there first (the
    outputs stay there)."""

    def chunk(start: int) -> torch.Tensor:
        part = inputs[start : start + batch_size]
        return part if device is None else to_device(part, device)

    return torch.cat([fn(chunk(i)) for i in range(0, len(inputs), batch_size)])


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    return (predictions.argmax(dim=1) == labels).float().mean().item()
