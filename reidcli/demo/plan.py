"""How big the demo is: data sizes, model and schedules of the full and the quick demo.

Sized for a 2-core CPU: the 64-d `vit-tiny-test` backbone at 64x32 pixels (4x2 patches),
small DINO heads, AdamW. The pre-training budget dominates, because the point of the demo
is the comparison random init vs pre-trained init after the same fine-tuning. Fine-tuning
gets 40 epochs (30 in the quick demo): at 20 epochs of AdamW lr 1e-3 this ViT is still far
from fitting the training identities (docs/study.md measured 21 vs 69 mAP at 20 vs 40).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class DemoPlan:
    name: str
    # synthetic data (`reid synth`)
    ids: int
    cams: int
    per_cam: int
    unlabeled_images: int
    target_like: float
    size: tuple[int, int]
    # cfs-filter
    keep: float
    proxy_epochs: int
    proxy_sample: int
    # pre-training (DINO)
    backbone: str
    pretrain_epochs: int
    pretrain_batch: int
    pretrain_lr: float
    """Per 256 images, as `reid pretrain --lr`."""
    out_dim: int
    head_hidden: int
    head_bottleneck: int
    local_crops: int
    momentum_teacher: float
    # fine-tuning (random init and pre-trained init, identical schedules)
    finetune_epochs: int
    finetune_warmup: int
    finetune_lr: float
    batch: tuple[int, int]
    # the picture
    show_queries: int
    show_k: int
    seed: int = 0
    # adaptation to a second synthetic world without its labels (`finetune --unsupervised`):
    # k1 and eps scaled to 12-24 images per identity (the reference's k1 30 and eps 0.6
    # merge these worlds into a few clusters); measured in docs/unsupervised.md
    adapt_epochs: int = 10
    adapt_iters: int = 20
    adapt_lr: float = 1e-4
    adapt_eps: float = 0.5
    adapt_min_samples: int = 4
    adapt_k1: int = 12
    # cluster camera-centred features: without it this tiny ViT's clusters follow the
    # synthetic cameras and adaptation lowers mAP (docs/unsupervised.md, camera-aware)
    adapt_camera_norm: bool = True

    @property
    def local_size(self) -> tuple[int, int]:
        # Half the global size, as `cfs-filter` sizes its proxies' local crops.
        return max(self.size[0] // 2, 16), max(self.size[1] // 2, 16)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def finetune_recipe(self) -> dict[str, Any]:
        """Fine-tuning settings that `reid finetune` has no option for (a recipe file).

        TransReID's 10-pixel padding and random erasing are sized for 256x128 crops; on
        64x32 they destroy a third of the image. Measured on the quick dataset: 12% mAP after
        20 epochs with padding 3 and no erasing, 6% with the defaults.
        """
        return {"padding": max(2, self.size[1] // 10), "erase_prob": 0.0}

    def pretrain_recipe(self) -> dict[str, Any]:
        """Pre-training settings that `reid pretrain` has no option for (a recipe file)."""
        return {
            "out_dim": self.out_dim, "head_hidden": self.head_hidden,
            "head_bottleneck": self.head_bottleneck, "local_crops": self.local_crops,
            "lr": self.pretrain_lr, "momentum_teacher": self.momentum_teacher,
            "crop_aspect": (0.4, 0.6), "drop_path": 0.0,
            # Fine-tuning normalises ViT inputs with 0.5 / 0.5; pre-training must match.
            "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
        }


FULL = DemoPlan(
    name="full", ids=120, cams=6, per_cam=4, unlabeled_images=3000, target_like=0.3,
    size=(64, 32), keep=0.5, proxy_epochs=2, proxy_sample=1000, backbone="vit-tiny-test",
    pretrain_epochs=12, pretrain_batch=64, pretrain_lr=2e-3, out_dim=1024, head_hidden=256,
    head_bottleneck=64, local_crops=2, momentum_teacher=0.99, finetune_epochs=40,
    finetune_warmup=2, finetune_lr=1e-3, batch=(16, 4), show_queries=6, show_k=8,
)

# The same pipeline at a quarter of the data and a third of the pre-training, for a first look.
QUICK = replace(
    FULL, name="quick", ids=60, cams=4, per_cam=3, unlabeled_images=800, proxy_epochs=1,
    proxy_sample=300, pretrain_epochs=4, out_dim=512, head_hidden=128, finetune_epochs=30,
    batch=(8, 4), show_queries=4, show_k=6,
)

PLANS = {"full": FULL, "quick": QUICK}
