"""LiraNet: Arca's adaptors composed with the LaSR head - pooled features in, fused embedding z out.

    E_lr = A_lr(P(H_lr)),  E_en = A_en(P(H_en)),  z = LaSR([lang; E_lr; E_en])

Pure module (tensors in, tensors out); the trainer and the inference model both use it.
"""

from __future__ import annotations

from torch import Tensor, nn

from lira.arca import AnchorAdaptors
from lira.lasr.head import LaSRHead

_ADAPTOR_KEYS = ("in_dim_lr", "in_dim_en", "d", "shared", "hidden", "dropout", "residual")
_HEAD_KEYS = ("d_model", "n_langs", "n_slots", "n_layers", "n_heads", "ff_mult", "dropout", "path_dropout", "d_in", "residual", "anchor_lang")


class LiraNet(nn.Module):
    def __init__(self, adaptors: AnchorAdaptors, head: LaSRHead):
        super().__init__()
        self.adaptors = adaptors
        self.head = head

    def anchored(self, lr: Tensor, en: Tensor | None) -> tuple[Tensor, Tensor | None]:
        e_lr = self.adaptors.lr(lr)
        e_en = self.adaptors.en(en) if en is not None else None
        return e_lr, e_en

    def forward(self, lr: Tensor, en: Tensor | None, lang: Tensor, en_mask: Tensor | None = None) -> Tensor:
        """lr [B,S,H_lr], en [B,S,H_en] | None, lang [B] -> z [B,d] (unit norm)."""
        e_lr, e_en = self.anchored(lr, en)
        return self.head(e_lr, e_en, lang, en_mask=en_mask)

    def config(self) -> dict:
        """What rebuilds this net: each part's own constructor arguments (saved in ``lira_model.json``)."""
        return {"arca": self.adaptors.config(), "lasr": self.head.config()}

    @classmethod
    def from_meta(cls, meta: dict) -> LiraNet:
        """Build the (untrained) net a ``lira-model/1`` folder describes.

        Folders written before the parts saved their own config lack some keys (``n_langs``,
        ``n_slots``, ``d_in``, ...): those follow from the model's languages, S_feat and adaptor width.
        """
        a, lz = meta["arca"], meta["lasr"]
        adaptors = AnchorAdaptors.from_config({k: a[k] for k in _ADAPTOR_KEYS if k in a})
        head = {"d_model": lz.get("d_model", a["d"]), "n_langs": len(meta["languages"]), "n_slots": meta["s_feat"],
                "d_in": a["d"], **{k: lz[k] for k in _HEAD_KEYS if k in lz}}
        return cls(adaptors, LaSRHead.from_config(head))

    def lrl_only(self, lr: Tensor, lang: Tensor) -> Tensor:
        return self.head.lrl_only(self.adaptors.lr(lr), lang)

    def en_only(self, en: Tensor, lang: Tensor | None = None) -> Tensor:
        """z of anchor-language text from its English-path features (``lang`` None: the anchor entry)."""
        return self.head.en_only(self.adaptors.en(en), lang)
