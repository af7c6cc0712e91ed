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
- ``facenet64``: the literature's FaceNet64 (KEDMI, PLG-MI, LOMMA): IR-50 at 64x64 with its own
  4x4 output layer, a target and an evaluator choice;
- ``inception-resnet-v1``: facenet-pytorch's InceptionResnetV1 taking the 64x64 task images,
  upsampled inside the model to the 160x160 its VGGFace2 weights expect.

Pretrained weights (ImageNet for vgg16, VGGFace2 for inception-resnet-v1, MS1M for IR) are used
when present in the local cache or the path ``task.target.weights``, downloaded when online, and
otherwise the model trains from scratch; :func:`load_pretrained` says which in the record.

Published checkpoints (``task.target.checkpoint`` / ``task.evaluator.checkpoint``,
benchmark/checkpoints.py) replace training: the layouts below map KEDMI's and GMI's target and
evaluator files (``{'state_dict': {'module.feature...', 'module.fc_layer...'}}``) and face.evoLVe's
MS1M backbones onto these modules. The published models take images in [0, 1] as they are
(``transforms.ToTensor()``), this project's own models in [-1, 1]: ``input_centred`` says which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmark.checkpoints import (
    CHECKPOINT_LAYOUTS,
    CheckpointError,
    CheckpointLayout,
    layout_of,
    register_layout,
)

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
        input_centred: bool = True,
    ):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim
        self.channels, self.backbone_channels = channels, backbone_channels
        self.input_size = input_size
        self.blocks = blocks or []
        self.architecture = architecture
        self.input_centred = input_centred  # False: a published model taking [0, 1] images

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = images * 2 - 1 if self.input_centred else images
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
    checkpoint = settings.get("checkpoint")
    common = {
        "channels": channels,
        "architecture": name,
        # a published file's model sees the images as its authors' pipeline gave them
        "input_centred": not (checkpoint and checkpoint_layout_of(checkpoint).published_input),
    }
    if checkpoint:
        expected = checkpoint_layout_of(checkpoint).architecture
        if expected != name:
            raise ValueError(
                f"checkpoint layout {checkpoint['layout']} holds the {expected} architecture, "
                f"but the model is {name}: set model: {expected} beside the checkpoint"
            )
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
    if name in ("ir152", "ir50", "facenet64"):
        input_size = 112 if name == "ir50" else 64
        body = IRBackbone(152 if name == "ir152" else 50, input_size)
        return ImageClassifier(
            body,
            512,
            num_classes,
            backbone_channels=3,
            input_size=None if input_size == size else input_size,
            blocks=list(body.stages[1:]),
            **common,
        )
    if name == "inception-resnet-v1":
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
            f"unknown image model '{name}': use small-cnn, eval-cnn, vgg16, ir152, ir50, "
            f"facenet64, inception-resnet-v1 or a timm model name (timm.list_models())"
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
    if name == "inception-resnet-v1":
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
    if not Path(source).exists() and not offline and name in ("vgg16", "inception-resnet-v1"):
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


# Published checkpoints (benchmark/checkpoints.py) ---------------------------------------------
@dataclass(frozen=True)
class ClassifierLayout(CheckpointLayout):
    architecture: str = ""  # the build_image_model name the file's tensors fit
    published_input: bool = True  # the model takes [0, 1] images (GMI/KEDMI's ToTensor)


def checkpoint_layout_of(spec) -> ClassifierLayout:
    layout = layout_of(spec)
    if not isinstance(layout, ClassifierLayout):
        raise CheckpointError(
            f"checkpoint layout {layout.name} is not a classifier's; a target or evaluator takes "
            f"one of {sorted(n for n, v in CHECKPOINT_LAYOUTS.items() if isinstance(v, ClassifierLayout))}"
        )
    return layout


def ir_body_key(depth: int) -> "callable":
    """face.evoLVe's flat ``body.<n>.shortcut_layer|res_layer`` -> ``stages.<s>.<u>.shortcut|
    residual`` of :class:`IRBackbone` (the same modules, grouped by stage)."""
    starts = [sum(IR_UNITS[depth][:i]) for i in range(4)]

    def rename(key: str) -> str:
        match = re.fullmatch(r"body\.(\d+)\.(shortcut_layer|res_layer)\.(.*)", key)
        if not match:
            return key
        index, part, rest = int(match[1]), match[2], match[3]
        stage = max(i for i, start in enumerate(starts) if index >= start)
        unit = index - starts[stage]
        return (
            f"stages.{stage}.{unit}.{'shortcut' if part == 'shortcut_layer' else 'residual'}.{rest}"
        )

    return rename


def kedmi_classifier_key(depth: int | None):
    """KEDMI's classify.py: ``feature`` (VGG16-BN features, or an evoLVe IR body whose output
    layer sits in the classifier at 64x64 and inside ``feature`` at 112x112), ``bn`` (VGG16's
    BatchNorm1d), ``output_layer`` and ``fc_layer`` (the identity head)."""
    body = ir_body_key(depth) if depth else None

    def rename(key: str) -> str:
        if key.startswith("fc_layer."):
            return "head." + key[len("fc_layer.") :]
        if depth is None:
            if key.startswith("feature."):
                return "backbone.features." + key[len("feature.") :]
            if key.startswith("bn."):
                return "backbone.norm." + key[len("bn.") :]
            return key
        if key.startswith("feature."):
            key = key[len("feature.") :]
        return "backbone." + body(key)

    return rename


def evolve_backbone_key(depth: int):
    """face.evoLVe's MS1M backbone files: the bare ``IR_50``/``IR_152`` state dict."""
    body = ir_body_key(depth)
    return lambda key: "backbone." + body(key)


def evolve_layout(depth: int, use: str, filename: str) -> ClassifierLayout:
    """face.evoLVe's MS1M backbone file of IR-<depth>: a bare state dict, partial (no head)."""
    return ClassifierLayout(
        f"evolve-ir{depth}",
        f"face.evoLVe's IR-{depth} MS1M backbone (112x112), {use}",
        f"evolve/{filename}",
        f"https://github.com/ZhaoJ9014/face.evoLVe (Model Zoo: IR-{depth}, MS-Celeb-1M_Align_112x112)",
        evolve_backbone_key(depth),
        nesting=(),
        prefix="",
        partial=True,
        example_key="body.0.res_layer.1.weight",
        architecture=f"ir{depth}",
    )


KEDMI_SOURCE = (
    "https://github.com/SCccc21/Knowledge-Enriched-DMI (README: the target checkpoints' Google "
    "Drive folder 1U4gekn72UX_n1pHdm9GQUQwwYVDvpTfN)"
)
for layout in (
    ClassifierLayout(
        "kedmi-vgg16",
        "GMI/KEDMI's VGG16 CelebA target (1000 identities, 64x64)",
        "kedmi/VGG16_88.26.tar",
        KEDMI_SOURCE,
        kedmi_classifier_key(None),
        example_key="module.feature.0.weight",
        architecture="vgg16",
    ),
    ClassifierLayout(
        "kedmi-ir152",
        "KEDMI's IR-152 CelebA target (1000 identities, 64x64)",
        "kedmi/IR152_91.16.tar",
        KEDMI_SOURCE,
        kedmi_classifier_key(152),
        example_key="module.feature.body.0.res_layer.1.weight",
        architecture="ir152",
    ),
    ClassifierLayout(
        "kedmi-facenet64",
        "KEDMI's FaceNet64 CelebA target (IR-50 at 64x64, 1000 identities)",
        "kedmi/FaceNet64_88.50.tar",
        KEDMI_SOURCE,
        kedmi_classifier_key(50),
        example_key="module.output_layer.3.weight",
        architecture="facenet64",
    ),
    ClassifierLayout(
        "kedmi-evaluator",
        "GMI/KEDMI's CelebA evaluation model 'FaceNet' (IR-50 at 112x112, 1000 identities)",
        "kedmi/FaceNet_95.88.tar",
        KEDMI_SOURCE,
        kedmi_classifier_key(50),
        example_key="module.feature.output_layer.3.weight",
        architecture="ir50",
    ),
    evolve_layout(50, "a pretrained initialisation", "backbone_ir50_ms1m_epoch120.pth"),
    evolve_layout(
        152,
        "KEDMI's initialisation of its IR-152 target (the 112x112 output projection does not fit "
        "64x64 and stays initialised)",
        "Backbone_IR_152_Epoch_112_Batch_2547328_Time_2019-07-13-02-59_checkpoint.pth",
    ),
):
    register_layout(layout)
