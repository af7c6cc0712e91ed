"""Image classifiers used as targets and evaluation models, behind one interface.

Every model is an :class:`ImageClassifier`: images in [0, 1] -> ``features`` (the penultimate
vector the attacks' feature terms and the evaluator's KNN distance use) -> ``head`` (a linear
layer a defense may replace, e.g. MID's bottleneck). ``blocks`` lists the intermediate stages
(BiDO's hidden representations Z_j). ``task.target.model`` picks the architecture:

- ``small-cnn``: two conv blocks; ``eval-cnn``: three BN conv blocks (the mini evaluator);
- any timm model name (``test_resnet`` is the mini face target), trained from scratch;
- ``vgg16``: VGG16-BN features + BN + linear head for 64x64 inputs (GMI, KEDMI);
- ``ir152`` / ``ir50``: the IR (improved residual) face backbones of face.evoLVe, at 64x64 or
  112x112 (KEDMI's IR-152 target; IR-50 at 112x112 is the literature's "FaceNet112" evaluator);
- ``facenet64``: facenet-pytorch's InceptionResnetV1 taking the 64x64 task images, upsampled
  inside the model to the 160x160 its VGGFace2 weights expect.

Pretrained weights (ImageNet for vgg16, VGGFace2 for facenet64, MS1M for IR) are used when
present in the local cache or the path ``task.target.weights``, downloaded when online, and
otherwise the model trains from scratch; :func:`load_pretrained` says which in the record.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

VGG16_BN_IMAGENET = "vgg16_bn-6c64b313.pth"  # torchvision's VGG16_BN_Weights.IMAGENET1K_V1
FACENET_VGGFACE2 = "20180402-114759-vggface2.pt"  # facenet-pytorch's pretrained='vggface2'


class ImageClassifier(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        num_classes: int,
        *,
        channels: int,
        backbone_channels: int,
        input_size: int | None = None,
        blocks: list[nn.Module] | None = None,
        architecture: str = "",
    ):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim
        self.channels, self.backbone_channels = channels, backbone_channels
        self.input_size = input_size
        self.blocks = blocks or []
        self.architecture = architecture

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = images * 2 - 1
        if self.backbone_channels != self.channels:
            x = x.expand(-1, self.backbone_channels, -1, -1)
        if self.input_size and x.shape[-1] != self.input_size:
            x = F.interpolate(
                x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
            )
        return self.backbone(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


# IR backbones (Deng et al. ArcFace, CVPR 2019; face.evoLVe's IR_50 / IR_152) ---------------
class BottleneckIR(nn.Module):
    def __init__(self, in_channels: int, depth: int, stride: int):
        super().__init__()
        self.shortcut = (
            nn.MaxPool2d(1, stride)
            if in_channels == depth
            else nn.Sequential(
                nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        )
        self.residual = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.residual(x)


IR_UNITS = {50: (3, 4, 14, 3), 152: (3, 8, 36, 3)}


class IRBackbone(nn.Module):
    def __init__(self, depth: int, input_size: int):
        super().__init__()
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)
        )
        stages, in_channels = [], 64
        for units, channels in zip(IR_UNITS[depth], (64, 128, 256, 512)):
            layers = [BottleneckIR(in_channels, channels, 2)]
            layers += [BottleneckIR(channels, channels, 1) for _ in range(units - 1)]
            stages.append(nn.Sequential(*layers))
            in_channels = channels
        self.stages = nn.ModuleList(stages)
        side = input_size // 16
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(0.4),
            nn.Flatten(),
            nn.Linear(512 * side * side, 512),
            nn.BatchNorm1d(512),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_layer(x)
        for stage in self.stages:
            x = stage(x)
        return self.output_layer(x)


class SmallCNNBackbone(nn.Module):
    def __init__(self, channels: int, size: int, width: int):
        super().__init__()
        self.block1 = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.block2 = nn.Sequential(
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.project = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * (size // 4) ** 2, 128), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.block2(self.block1(x)))


class EvalCNNBackbone(nn.Module):
    """Three BN conv blocks and global pooling: the mini tasks' evaluation model, a different
    architecture from their targets."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 5, padding=2),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1),
            nn.BatchNorm2d(4 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class VGG16Backbone(nn.Module):
    """VGG16-BN's convolutional features; 64x64 -> 512 x 2 x 2 -> BN (GMI's VGG16)."""

    def __init__(self, size: int):
        super().__init__()
        import torchvision

        self.features = torchvision.models.vgg16_bn().features
        side = size // 32
        self.norm = nn.BatchNorm1d(512 * side * side)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.features(x).flatten(1))


def build_image_model(
    name: str, num_classes: int, image_shape: tuple[int, int, int], settings: dict
) -> ImageClassifier:
    channels, size, _ = image_shape
    common = {"channels": channels, "architecture": name}
    if name == "small-cnn":
        body = SmallCNNBackbone(channels, size, int(settings.get("width", 32)))
        return ImageClassifier(
            body,
            128,
            num_classes,
            backbone_channels=channels,
            blocks=[body.block1, body.block2, body.project],
            **common,
        )
    if name == "eval-cnn":
        width = int(settings.get("width", 24))
        body = EvalCNNBackbone(channels, width)
        return ImageClassifier(
            body,
            4 * width,
            num_classes,
            backbone_channels=channels,
            blocks=[body.body[4], body.body[8]],
            **common,
        )
    if name == "vgg16":
        body = VGG16Backbone(size)
        pools = [i for i, m in enumerate(body.features) if isinstance(m, nn.MaxPool2d)]
        return ImageClassifier(
            body,
            512 * (size // 32) ** 2,
            num_classes,
            backbone_channels=3,
            blocks=[body.features[i] for i in pools[2:]],
            **common,
        )
    if name in ("ir152", "ir50"):
        input_size = 64 if name == "ir152" else 112
        body = IRBackbone(int(name[2:]), input_size)
        return ImageClassifier(
            body,
            512,
            num_classes,
            backbone_channels=3,
            input_size=None if input_size == size else input_size,
            blocks=list(body.stages[1:]),
            **common,
        )
    if name == "facenet64":
        from facenet_pytorch import InceptionResnetV1

        body = InceptionResnetV1(pretrained=None, classify=False)
        return ImageClassifier(
            body,
            512,
            num_classes,
            backbone_channels=3,
            input_size=160,
            blocks=[body.repeat_2, body.repeat_3],
            **common,
        )
    import timm

    if name not in timm.list_models():
        raise ValueError(
            f"unknown image model '{name}': use small-cnn, vgg16, ir152, ir50, "
            f"facenet64 or a timm model name (timm.list_models())"
        )
    body = timm.create_model(name, pretrained=False, num_classes=0, in_chans=channels)
    stages = [
        m
        for attr in ("layer2", "layer3", "layer4", "stages")
        if isinstance(m := getattr(body, attr, None), nn.Module)
    ]
    return ImageClassifier(
        body, body.num_features, num_classes, backbone_channels=channels, blocks=stages, **common
    )


def pretrained_source(name: str, settings: dict) -> Path | str | None:
    """Where this architecture's pretrained weights would come from (a local file when present,
    else the name of the download), or None when the architecture has none."""
    if settings.get("weights"):
        return Path(str(settings["weights"])).expanduser()
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    if name == "vgg16":
        return hub / VGG16_BN_IMAGENET
    if name == "facenet64":
        return hub / FACENET_VGGFACE2
    return None


def load_pretrained(model: ImageClassifier, settings: dict, offline: bool) -> dict:
    """Initialise the backbone from pretrained weights when available; say what happened."""
    name = model.architecture
    if not settings.get("pretrained", True):
        return {"pretrained": False, "pretrained_reason": "task.target.pretrained=false"}
    source = pretrained_source(name, settings)
    if source is None:
        return {
            "pretrained": False,
            "pretrained_reason": f"{name} has no public pretrained weights; pass a local "
            f"file as task.target.weights",
        }
    if not Path(source).exists() and not offline and name in ("vgg16", "facenet64"):
        try:
            _download_weights(name)
        except Exception as error:  # offline machines land here: train from scratch, say so
            return {
                "pretrained": False,
                "pretrained_reason": f"download of {Path(source).name} failed ({error})",
            }
    if not Path(source).exists():
        return {
            "pretrained": False,
            "pretrained_reason": f"no weights at {source} (offline: put the file there)",
        }
    state = torch.load(source, map_location="cpu", weights_only=True)
    if name == "vgg16":
        state = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
        model.backbone.features.load_state_dict(state)
    else:
        state = {k: v for k, v in state.items() if not k.startswith("logits.")}
        missing, _ = model.backbone.load_state_dict(state, strict=False)
        if len(missing) > len(state) // 2:
            raise ValueError(
                f"the weights at {source} do not fit {name}: {len(missing)} tensors missing"
            )
    return {"pretrained": True, "pretrained_weights": str(source)}


def _download_weights(name: str) -> None:
    if name == "vgg16":
        import torchvision

        torchvision.models.VGG16_BN_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    else:
        from facenet_pytorch import InceptionResnetV1

        InceptionResnetV1(pretrained="vggface2")
