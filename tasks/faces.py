"""Face identity tasks: Olivetti (mini) and CelebA (the literature's protocol), FFHQ as prior.

CelebA follows GMI / KEDMI / PLG-MI (Zhang et al. CVPR 2020, Sec. 4.1): the 1,000 identities
with the most images are private (split per identity into train/test), the images of every
other identity are the public prior data; when KEDMI's split files (``trainset.txt``,
``testset.txt``, ``ganset.txt``) are under ``<root>/meta/`` they define the split and the class
order instead, so the published targets' labels line up; aligned images are centre-cropped to 108x108 and
resized to 64x64. ``task.public=ffhq`` replaces the public data by FFHQ (the cross-distribution
setting of PLG-MI and PPA). Unaligned ``img_celeba/`` images are detected and cropped with
facenet-pytorch's MTCNN (its weights ship inside the package) once, then cached.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.cache import atomic_write_bytes, file_md5
from benchmark.downloads import dataset, online
from benchmark.errors import MissingDataError
from benchmark.registry import Citation, register_task
from tasks.images import ImageTask

OLIVETTI_FILE = "olivetti_py3.pkz"
OLIVETTI_SOURCE = "https://ndownloader.figshare.com/files/5976027 (scikit-learn)"
# torchvision.datasets.CelebA's checksums of the official files.
CELEBA_MD5 = {
    "identity_CelebA.txt": "32bd1bd63d3c78cd57e08160ec5ed1e2",
    "list_eval_partition.txt": "d32c9cbf5e040fd4025c592c306e6668",
    "img_align_celeba.zip": "00d2c5bc6d35e252742224ab0c1e8fcb",
}
CELEBA_SOURCE = (
    "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Google Drive: Img/, Anno/, Eval/)"
)
FFHQ_SOURCE = "https://github.com/NVlabs/ffhq-dataset (thumbnails128x128/ or images1024x1024/)"
DETECT_SIDE = 320
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


@register_task(
    "olivetti",
    modalities=("image",),
    version="1.0",
    real_data=True,
    citation=Citation(
        "Parameterisation of a stochastic model for human face identification",
        "Samaria and Harter",
        "IEEE WACV",
        1994,
        "https://cam-orl.co.uk/facedatabase.html",
    ),
)
class Olivetti(ImageTask):
    """The ORL/Olivetti faces as scikit-learn caches them (40 x 10 grey 64x64 images)."""

    def data_problems(self) -> list[str]:
        try:  # present, or downloaded when online (the same path as `invbench data olivetti`)
            fetch_olivetti(self.data_root, self.offline)
        except MissingDataError as error:
            return [str(error)]
        return []

    def load_images(self) -> tuple[torch.Tensor, np.ndarray]:
        from sklearn.datasets import fetch_olivetti_faces

        faces = fetch_olivetti_faces(
            data_home=str(olivetti_home(self.data_root)), download_if_missing=False
        )
        images = torch.tensor(faces.images, dtype=torch.float32)[:, None]
        size = int(self.cfg.get("image_size", 64))
        if size != images.shape[-1]:
            images = F.interpolate(
                images, size=(size, size), mode="bilinear", antialias=True, align_corners=False
            ).clamp(0, 1)
        return images, faces.target


def read_identities(path: Path) -> dict[str, int]:
    identities = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            identities[parts[0]] = int(parts[1])
    return identities


def load_folder(paths: list[Path], size: int, crop: int | None = None) -> torch.Tensor:
    """RGB images -> [N, 3, size, size] in [0, 1]: a centre crop of ``crop`` pixels (or the
    largest centred square) resized with antialiasing."""
    from PIL import Image

    out = torch.empty(len(paths), 3, size, size)
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            image = image.convert("RGB")
            width, height = image.size
            side = crop or min(width, height)
            left, top = (width - side) // 2, (height - side) // 2
            image = image.crop((left, top, left + side, top + side)).resize(
                (size, size), Image.BICUBIC
            )
            out[i] = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1) / 255.0
    return out


def detect_faces(paths: list[Path], size: int, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """MTCNN (Zhang et al. 2016, facenet-pytorch's bundled weights) on unaligned photos: the most
    confident face, its box enlarged by ``margin`` on each side to a square (roughly the framing
    of CelebA's aligned crop), resized to ``size``. Returns the faces and the indices of the
    photos where one was found."""
    from facenet_pytorch import MTCNN
    from PIL import Image

    detector = MTCNN(
        keep_all=False, select_largest=False, post_process=False, min_face_size=40, device="cpu"
    )
    faces, kept = [], []
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            image = image.convert("RGB")
            # Detection on a copy at most DETECT_SIDE pixels wide (its cost grows with the
            # pixel count); the crop is taken from the full-resolution photo.
            scale = min(1.0, DETECT_SIDE / max(image.size))
            small = image.resize(
                (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                Image.BILINEAR,
            )
            boxes, _ = detector.detect(small)
            if boxes is None:
                continue
            x0, y0, x1, y1 = boxes[0] / scale
            side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            crop = image.crop(
                (int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2))
            ).resize((size, size), Image.BICUBIC)
            faces.append(torch.from_numpy(np.asarray(crop).copy()).permute(2, 0, 1) / 255.0)
            kept.append(i)
    if not faces:
        return torch.empty(0, 3, size, size), torch.empty(0, dtype=torch.long)
    return torch.stack(faces), torch.tensor(kept)


@register_task(
    "celeba",
    modalities=("image",),
    version="1.0",
    real_data=True,
    citation=Citation(
        "Deep Learning Face Attributes in the Wild",
        "Liu et al.",
        "ICCV",
        2015,
        "https://arxiv.org/abs/1411.7766",
    ),
)
class CelebA(ImageTask):
    """CelebA under ``task.root`` (default ``<data root>/celeba``): ``identity_CelebA.txt``, and
    ``img_align_celeba/`` (preferred) or ``img_celeba/`` (faces detected with MTCNN)."""

    def root(self) -> Path:
        return Path(str(self.cfg.get("root") or self.data_root / "celeba")).expanduser()

    def image_folder(self) -> tuple[Path, bool]:
        aligned = self.root() / "img_align_celeba"
        return (aligned, True) if aligned.is_dir() else (self.root() / "img_celeba", False)

    def data_problems(self) -> list[str]:
        problems = []
        for name in ("identity_CelebA.txt", "list_eval_partition.txt"):
            path = self.root() / name
            if not path.exists():
                if name == "identity_CelebA.txt":
                    problems.append(
                        f"missing: {path} (md5 {CELEBA_MD5[name]}, from "
                        f"{CELEBA_SOURCE}, folder Anno/)"
                    )
            elif file_md5(path) != CELEBA_MD5[name]:
                problems.append(
                    f"md5 mismatch: {path} (expected {CELEBA_MD5[name]}, "
                    f"torchvision's value for the official file); replace it"
                )
        folder, _ = self.image_folder()
        if not folder.is_dir():
            problems.append(
                f"missing: {self.root() / 'img_align_celeba'}/ (unzip "
                f"img_align_celeba.zip, md5 {CELEBA_MD5['img_align_celeba.zip']}, "
                f"from {CELEBA_SOURCE}) or {folder}/ (unaligned photos)"
            )
        if str(self.cfg.get("public", "celeba")) == "ffhq":
            problems += ffhq_problems(self.ffhq_root())
        return problems

    def ffhq_root(self) -> Path:
        return Path(str(self.cfg.get("public_root") or self.data_root / "ffhq")).expanduser()

    def load_images(self) -> tuple[torch.Tensor, np.ndarray]:
        folder, aligned = self.image_folder()
        identities = read_identities(self.root() / "identity_CelebA.txt")
        present = sorted(p for p in folder.iterdir() if p.name in identities)
        if not present:
            raise MissingDataError(f"no image of {folder} is listed in identity_CelebA.txt")
        labels = np.array([identities[p.name] for p in present])
        # Private: the identities with the most images present (ties: smaller id first).
        ids, counts = np.unique(labels, return_counts=True)
        order = np.lexsort((ids, -counts))
        count = int(self.cfg["private_identities"])
        if count >= len(ids):
            raise MissingDataError(
                f"{folder} has images of {len(ids)} identities; "
                f"task.private_identities={count} leaves none public"
            )
        private_ids = ids[order[:count]]
        self.cfg["private_classes"] = private_ids.tolist()
        self.cfg["public_classes"] = ids[order[count:]].tolist()
        size = int(self.cfg["image_size"])
        if aligned:
            cached = self._cached(
                present,
                "aligned",
                lambda: {"images": load_folder(present, size, crop=int(self.cfg["crop"]))},
            )
            return cached["images"], labels
        cached = self._cached(
            present,
            "mtcnn",
            lambda: dict(
                zip(("images", "kept"), detect_faces(present, size, float(self.cfg["margin"])))
            ),
        )
        return cached["images"], labels[cached["kept"].numpy()]

    # KEDMI's split of CelebA (its data/trainset.txt, testset.txt, ganset.txt; LOMMA and PLG-MI
    # reuse it): private train and test "<file> <label>" lines, labels 0-999 in the published
    # targets' order, and the public GAN files one per line
    SPLIT_FILES = ("trainset.txt", "testset.txt", "ganset.txt")

    def split_files(self) -> list[Path] | None:
        """KEDMI's split files under ``task.root / task.split_folder`` when all three are there."""
        folder = self.cfg.get("split_folder")
        if not folder:
            return None
        paths = [self.root() / str(folder) / name for name in self.SPLIT_FILES]
        return paths if all(p.is_file() for p in paths) else None

    def _splits(self) -> dict:
        files = self.split_files()
        if files is None or hasattr(self, "_split_cache"):
            return super()._splits()
        folder, aligned = self.image_folder()
        if not aligned:
            raise MissingDataError(
                f"KEDMI's split files ({files[0].parent}) name aligned images: put "
                f"img_align_celeba/ under {self.root()}, or set task.split_folder=null"
            )

        def listed(path: Path) -> tuple[list[Path], list[int]]:
            rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
            missing = [r[0] for r in rows if not (folder / r[0]).is_file()]
            if missing:
                raise MissingDataError(
                    f"{path} names {len(missing)} images not in {folder} (e.g. {missing[0]}); "
                    f"unzip the whole img_align_celeba.zip there"
                )
            return [folder / r[0] for r in rows], [int(r[1]) if len(r) > 1 else -1 for r in rows]

        (train, train_y), (test, test_y), (public, _) = (listed(p) for p in files)
        classes = sorted(set(train_y))
        if classes != list(range(len(classes))) or not set(test_y) <= set(classes):
            raise MissingDataError(
                f"{files[0]}: labels must be 0..K-1 (the published targets' classes) and the "
                f"test labels among them"
            )
        self.cfg["private_identities"] = len(classes)
        self.cfg["private_classes"] = classes
        size, crop = int(self.cfg["image_size"]), int(self.cfg["crop"])

        def load(paths: list[Path], kind: str) -> torch.Tensor:
            return self._cached(paths, kind, lambda: {"images": load_folder(paths, size, crop)})[
                "images"
            ]

        self._split_cache = {
            "train_x": load(train, "kedmi-train"),
            "train_y": torch.tensor(train_y),
            "test_x": load(test, "kedmi-test"),
            "test_y": torch.tensor(test_y),
            "public_x": self.load_public_images(load(public, "kedmi-public")),
            "public_y": torch.zeros(len(public), dtype=torch.long),  # unlabelled public data
        }
        return self._split_cache

    @property
    def num_classes(self) -> int:
        if self.split_files() is not None:
            self._splits()  # the split files fix the class count
        return int(self.cfg["private_identities"])

    def _cached(self, paths: list[Path], kind: str, build) -> dict[str, torch.Tensor]:
        """Decoded (and, unaligned, detected) images, computed once per file list and setting."""
        key = hashlib.sha256(
            "\n".join(
                [
                    kind,
                    str(self.cfg["image_size"]),
                    str(self.cfg.get("crop")),
                    str(self.cfg.get("margin")),
                    *[p.name for p in paths],
                ]
            ).encode()
        ).hexdigest()[:16]
        path = self.cache_dir / "faces" / f"celeba-{kind}-{key}.pt"
        if path.exists():
            return torch.load(path, weights_only=True)
        tensors = build()
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(tensors, buffer)
        atomic_write_bytes(path, buffer.getvalue())
        return tensors

    def load_public_images(self, same_distribution: torch.Tensor) -> torch.Tensor:
        if str(self.cfg.get("public", "celeba")) != "ffhq":
            return same_distribution
        paths = ffhq_images(self.ffhq_root())
        return self._cached(
            paths, "ffhq", lambda: {"images": load_folder(paths, int(self.cfg["image_size"]))}
        )["images"]


def ffhq_images(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def ffhq_problems(root: Path) -> list[str]:
    if not root.is_dir() or not ffhq_images(root):
        return [
            f"missing: FFHQ images under {root}/ (any folder of .png/.jpg; from "
            f"{FFHQ_SOURCE}; or set task.public_root)"
        ]
    return []


def olivetti_home(data_root: Path) -> Path:
    return data_root / "faces" / "sklearn_olivetti"


@dataset("olivetti")
def fetch_olivetti(data_root: Path, offline: bool) -> str:
    home = olivetti_home(data_root)
    if (home / OLIVETTI_FILE).exists():
        return f"olivetti: present at {home / OLIVETTI_FILE}"
    if offline or not online("ndownloader.figshare.com"):
        raise MissingDataError(
            f"olivetti: offline. On an online machine run `invbench data olivetti`, or fetch "
            f"{OLIVETTI_SOURCE} as scikit-learn does (fetch_olivetti_faces(data_home={home}) "
            f"checks its sha256) and copy {OLIVETTI_FILE} into {home}/"
        )
    from sklearn.datasets import fetch_olivetti_faces

    fetch_olivetti_faces(data_home=str(home), download_if_missing=True)
    return f"olivetti: downloaded to {home / OLIVETTI_FILE} (sha256 checked by scikit-learn)"


def celeba_instructions(root: Path) -> str:
    return (
        f"celeba: fetch from {CELEBA_SOURCE}: Img/img_align_celeba.zip (md5 "
        f"{CELEBA_MD5['img_align_celeba.zip']}), Anno/identity_CelebA.txt (md5 "
        f"{CELEBA_MD5['identity_CelebA.txt']}), Eval/list_eval_partition.txt (md5 "
        f"{CELEBA_MD5['list_eval_partition.txt']}); unzip the images so that "
        f"{root}/img_align_celeba/000001.jpg exists and put both text files in {root}/"
    )


@dataset("celeba")
def fetch_celeba(data_root: Path, offline: bool) -> str:
    root = data_root / "celeba"
    files = {name: root / name for name in ("identity_CelebA.txt", "list_eval_partition.txt")}
    if (root / "img_align_celeba").is_dir() and all(p.exists() for p in files.values()):
        bad = [p.name for name, p in files.items() if file_md5(p) != CELEBA_MD5[name]]
        if bad:
            raise MissingDataError(
                f"celeba: md5 mismatch for {', '.join(bad)} in {root}; " + celeba_instructions(root)
            )
        return f"celeba: present at {root} (md5 of the identity and partition files verified)"
    if offline or not online("drive.google.com"):
        raise MissingDataError("celeba: offline. " + celeba_instructions(root))
    try:
        import torchvision

        torchvision.datasets.CelebA(
            str(data_root), split="all", target_type="identity", download=True
        )  # checks torchvision's md5 values
    except Exception as error:  # Google Drive quotas, gdown missing: say what to do by hand
        raise MissingDataError(
            f"celeba: the download failed ({error}). " + celeba_instructions(root)
        ) from error
    return f"celeba: downloaded to {root} (md5 checked by torchvision)"


@dataset("ffhq")
def fetch_ffhq(data_root: Path, offline: bool) -> str:
    root = data_root / "ffhq"
    if not ffhq_problems(root):
        return f"ffhq: {len(ffhq_images(root))} images at {root}"
    raise MissingDataError(
        f"ffhq: not downloadable automatically (Google Drive, 70,000 images). Use the official "
        f"script of {FFHQ_SOURCE} (`python download_ffhq.py --thumbs` fetches the 128x128 "
        f"thumbnails, 2 GB, and checks their md5) and put the images (any sub-folders) under "
        f"{root}/; invbench resizes them to 64x64"
    )
