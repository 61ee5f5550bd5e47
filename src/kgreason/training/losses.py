"""Losses for sLCWA (a positive against sampled negatives) and LCWA (1-N: scores against multi-hot labels).

Every loss implements one or both of

* ``slcwa(positive_scores[b], negative_scores[b, k], valid[b, k] | None) -> scalar``: ``valid`` marks the
  negatives to use (filtered false negatives are ``False`` and contribute nothing);
* ``lcwa(scores[b, n], labels[b, n]) -> scalar``: ``labels`` are 0/1 multi-hot rows over the ``n`` candidates.

Definitions (``σ`` the logistic function, ``ε`` the label smoothing, scores are logits, higher is better):

* **pointwise losses** ``l(s, y)`` in sLCWA: ``mean_i ½ [ l(s_i⁺, y⁺) + mean_j l(s_ij⁻, y⁻) ]`` over valid
  negatives -- positives and negatives weigh the same whatever ``k`` (with ``k = 1`` this is the plain mean over
  all ``2b`` scores). In LCWA: the mean of ``l`` over all ``b·n`` entries.

  - ``softplus``: ``l(s, 1) = softplus(-s)``, ``l(s, 0) = softplus(s)`` (= BCE with logits for hard labels).
  - ``bce`` (binary cross-entropy with logits): ``l(s, y) = -y log σ(s) - (1 - y) log(1 - σ(s))`` with smoothed
    targets: LCWA ``y' = (1 - ε) y + ε / n`` (1-N smoothing, ConvE), sLCWA ``y' = (1 - ε) y + ε / 2``.

* ``margin_ranking`` (margin ``m``): sLCWA only; mean over valid pairs of ``max(0, m - s_i⁺ + s_ij⁻)``.
* ``nssa`` (self-adversarial negative sampling, Sun et al. 2019; margin ``γ``, temperature ``α``): sLCWA only;
  ``mean_i ½ [ -log σ(γ + s_i⁺) - Σ_j p_ij log σ(-γ - s_ij⁻) ]`` with ``p_i = softmax_j(α s_ij⁻)`` over valid
  negatives, not back-propagated through. For distance models (score ``-d``) this is RotatE's loss.
* ``cross_entropy`` (softmax): LCWA: each row's target distribution is its labels normalised to sum 1,
  smoothed as ``(1 - ε) t + ε / n``; loss ``mean_i -Σ_c t'_ic log softmax(s_i)_c``. sLCWA: softmax over the
  positive and its valid negatives, target the positive, smoothed over those ``1 + k_valid`` classes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kgreason.registry import Registry

__all__ = [
    "LOSSES",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "Loss",
    "MarginRankingLoss",
    "NSSALoss",
    "SoftplusLoss",
    "make_loss",
]

LOSSES: Registry[type[Loss]] = Registry("loss")


class Loss(nn.Module):
    """Base class; subclasses implement :meth:`slcwa` and/or :meth:`lcwa`."""

    #: whether the loss can be used with sLCWA / LCWA training
    supports_slcwa: bool = True
    supports_lcwa: bool = True

    def slcwa(
        self, positive_scores: torch.Tensor, negative_scores: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Loss of ``positive_scores[b]`` against ``negative_scores[b, k]`` (``valid[b, k]`` marks usable negatives)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be used with sLCWA training")

    def lcwa(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Loss of ``scores[b, n]`` against 0/1 ``labels[b, n]``."""
        raise NotImplementedError(
            f"{type(self).__name__} needs sampled negatives and cannot be used with LCWA training; "
            "use bce, softplus or cross_entropy"
        )

    def lcwa_sparse(self, scores: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """:meth:`lcwa` with the labels given by their positions: ``labels[rows, cols] = 1`` (distinct pairs),
        0 elsewhere. Losses that can avoid the dense label matrix override it; this default builds it."""
        labels = torch.zeros_like(scores)
        labels[rows, cols] = 1.0
        return self.lcwa(scores, labels)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        """``loss(pos, neg[, valid])`` -> :meth:`slcwa` when the first argument is 1-d, else :meth:`lcwa`."""
        if args[0].dim() == 1:
            return self.slcwa(*args)
        return self.lcwa(*args)


def _valid_mean(values: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Row means of ``values[b, k]`` over ``valid`` entries (0 for rows without any): ``[b]``."""
    if valid is None:
        return values.mean(dim=1)
    w = valid.to(values.dtype)
    return (values * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)


class _PointwiseLoss(Loss):
    """``l(s, y)`` applied pointwise; see the module docstring for the sLCWA / LCWA averaging."""

    label_smoothing: float = 0.0

    def pointwise(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(scores, targets, reduction="none")

    def slcwa(
        self, positive_scores: torch.Tensor, negative_scores: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        eps = self.label_smoothing
        if not eps:  # hard targets: l(s, 1) = softplus(-s), l(s, 0) = softplus(s), no target tensors needed
            pos = F.softplus(-positive_scores)
            neg = _valid_mean(F.softplus(negative_scores), valid)
            return 0.5 * (pos + neg).mean()
        pos_t = torch.full_like(positive_scores, 1.0 - eps / 2)
        neg_t = torch.full_like(negative_scores, eps / 2)
        pos = self.pointwise(positive_scores, pos_t)
        neg = _valid_mean(self.pointwise(negative_scores, neg_t), valid)
        return 0.5 * (pos + neg).mean()

    def lcwa(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = labels.to(scores.dtype)
        if self.label_smoothing:
            labels = (1.0 - self.label_smoothing) * labels + self.label_smoothing / scores.shape[-1]
        return self.pointwise(scores, labels).mean()

    def lcwa_sparse(self, scores: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        # both pointwise losses are BCE with logits, softplus(s) - y's, averaged: no dense labels needed
        # (a subclass that redefines lcwa or pointwise gets its own definition, through the dense labels)
        cls = type(self)
        if cls.lcwa is _PointwiseLoss.lcwa and cls.pointwise in _BCE_POINTWISE:
            return _SparseLabelBCE.apply(scores, rows, cols, self.label_smoothing)
        return super().lcwa_sparse(scores, rows, cols)


class _SparseLabelBCE(torch.autograd.Function):
    """Mean BCE with logits of ``scores[b, n]`` against labels 1 at ``(rows, cols)`` (distinct), 0 elsewhere,
    smoothed as ``(1 - eps) y + eps / n``: ``[sum softplus(s) - (1 - eps) sum_labels s - eps / n sum s] / (b n)``.

    The dense LCWA path builds the ``[b, n]`` labels, smooths them and lets autograd keep several ``[b, n]``
    tensors; here the backward pass is ``(sigmoid(s) - eps / n) / (b n)`` minus ``(1 - eps) / (b n)`` at the
    labels: one ``[b, n]`` tensor, written in place.
    """

    @staticmethod
    def forward(ctx, scores, rows, cols, eps):  # type: ignore[no-untyped-def,override]
        b, n = scores.shape
        positives = scores[rows, cols].sum()
        total = torch.nn.functional.softplus(scores).sum() - (1.0 - eps) * positives
        if eps:
            total = total - (eps / n) * scores.sum()
        ctx.save_for_backward(scores, rows, cols)
        ctx.eps = float(eps)
        return total / (b * n)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # type: ignore[no-untyped-def,override]
        scores, rows, cols = ctx.saved_tensors
        b, n = scores.shape
        scale = grad / (b * n)
        out = torch.sigmoid(scores)
        if ctx.eps:
            out.sub_(ctx.eps / n)
        out.index_put_((rows, cols), torch.full_like(rows, ctx.eps - 1.0, dtype=out.dtype), accumulate=True)
        return out.mul_(scale), None, None, None


@LOSSES.register("softplus")
class SoftplusLoss(_PointwiseLoss):
    """``softplus(-s)`` for positives, ``softplus(s)`` for negatives (no label smoothing)."""

    def pointwise(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # targets are exactly 0 or 1 here (no smoothing): softplus(-s) for 1, softplus(s) for 0
        return F.softplus((1.0 - 2.0 * targets) * scores)


@LOSSES.register("bce", "bce_with_logits", "binary_cross_entropy", "bceloss")
class BCEWithLogitsLoss(_PointwiseLoss):
    """Binary cross-entropy on logits with label smoothing ``label_smoothing`` (LCWA: 1-N smoothing ``ε / n``)."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)


#: pointwise functions equal to BCE with logits on 0/1 (and, for BCE, smoothed) targets
_BCE_POINTWISE = (_PointwiseLoss.pointwise, SoftplusLoss.pointwise)


@LOSSES.register("margin_ranking", "margin", "marginranking", "pairwise_hinge")
class MarginRankingLoss(Loss):
    """``max(0, margin - s⁺ + s⁻)`` averaged over valid (positive, negative) pairs; sLCWA only."""

    supports_lcwa = False

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        self.margin = float(margin)

    def slcwa(
        self, positive_scores: torch.Tensor, negative_scores: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        hinge = F.relu(self.margin - positive_scores.unsqueeze(1) + negative_scores)
        if valid is None:
            return hinge.mean()
        w = valid.to(hinge.dtype)
        return (hinge * w).sum() / w.sum().clamp(min=1.0)


@LOSSES.register("nssa", "self_adversarial", "self_adversarial_negative_sampling", "adversarial")
class NSSALoss(Loss):
    """Self-adversarial negative sampling loss (RotatE) with ``margin`` γ and ``adversarial_temperature`` α."""

    supports_lcwa = False

    def __init__(self, margin: float = 9.0, adversarial_temperature: float = 1.0) -> None:
        super().__init__()
        self.margin = float(margin)
        self.adversarial_temperature = float(adversarial_temperature)

    def slcwa(
        self, positive_scores: torch.Tensor, negative_scores: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        logits = self.adversarial_temperature * negative_scores.detach()
        if valid is not None:
            logits = logits.masked_fill(~valid, float("-inf"))
        weights = torch.softmax(logits, dim=1)
        if valid is not None:  # rows without any valid negative: softmax of all -inf is NaN -> weight 0
            weights = torch.nan_to_num(weights, nan=0.0)
        pos = -F.logsigmoid(self.margin + positive_scores)
        neg = -(weights * F.logsigmoid(-self.margin - negative_scores)).sum(dim=1)
        return 0.5 * (pos + neg).mean()


@LOSSES.register("cross_entropy", "ce", "softmax", "crossentropy")
class CrossEntropyLoss(Loss):
    """Softmax cross-entropy with label smoothing; see the module docstring."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def lcwa(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = labels.to(scores.dtype)
        target = labels / labels.sum(dim=1, keepdim=True).clamp(min=1.0)
        if self.label_smoothing:
            target = (1.0 - self.label_smoothing) * target + self.label_smoothing / scores.shape[-1]
        return -(target * torch.log_softmax(scores, dim=1)).sum(dim=1).mean()

    def slcwa(
        self, positive_scores: torch.Tensor, negative_scores: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        if valid is not None:
            negative_scores = negative_scores.masked_fill(~valid, float("-inf"))
        logits = torch.cat([positive_scores.unsqueeze(1), negative_scores], dim=1)
        log_p = torch.log_softmax(logits, dim=1)
        nll = -log_p[:, 0]
        if not self.label_smoothing:
            return nll.mean()
        usable = torch.ones_like(logits, dtype=torch.bool)
        if valid is not None:
            usable[:, 1:] = valid
        n_classes = usable.sum(dim=1).to(logits.dtype)
        uniform = -torch.where(usable, log_p, torch.zeros_like(log_p)).sum(dim=1) / n_classes
        return ((1.0 - self.label_smoothing) * nll + self.label_smoothing * uniform).mean()


def make_loss(loss: str | Loss, **kwargs: Any) -> Loss:
    """A loss by name (``"bce"``, ``"softplus"``, ``"margin_ranking"``, ``"nssa"``, ``"cross_entropy"``) with
    keyword arguments, or a built loss unchanged."""
    if isinstance(loss, Loss):
        return loss
    cls = LOSSES.get(loss)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise TypeError(f"cannot build loss {cls.__name__} with {kwargs}: {exc}") from exc
