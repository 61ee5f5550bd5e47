"""ConvE (Dettmers et al. 2018, "Convolutional 2D Knowledge Graph Embeddings").

``f(h, r, t) = relu(W vec(relu(BN([e_h ; w_r] * omega))) ) . e_t + b_t``, the head and relation embeddings
reshaped to 2D images and stacked.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from kgreason.models.base import KGEModel, dot_scores, fast_dropout, gather, register_model

__all__ = ["ConvE"]


class _PatchMoments(torch.autograd.Function):
    """First and second moments of image patches ``x[b, k, l]`` over batch and positions (``n = b * L``):
    ``mean[k] = sum x[b, k, l] / n`` and ``second[k, j] = sum x[b, k, l] x[b, j, l] / n``.

    One autograd node whose backward is one broadcast matmul ``(G + G^T) / n @ x`` plus the mean's term, where
    autograd through ``mean`` and ``einsum`` ran three skinny batched matmuls, two transposing copies and a
    division over ``x`` (a quarter of ConvE's network time at 256 queries).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0] * x.shape[2]
        ctx.save_for_backward(x)
        return x.sum(dim=(0, 2)) / n, torch.bmm(x, x.transpose(1, 2)).sum(0) / n

    @staticmethod
    def backward(ctx: Any, grad_mean: torch.Tensor, grad_second: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        n = x.shape[0] * x.shape[2]
        return torch.matmul((grad_second + grad_second.t()) / n, x).add_((grad_mean / n)[:, None])


@register_model("conve")
class ConvE(KGEModel):
    """ConvE: a 2D convolution over the stacked head and relation images, a projection back to the embedding
    space, then a dot product with the tail embedding plus a per-entity bias.

    The network runs once per ``(h, r)`` query; scoring all tails is then one matmul against the entity table
    (plus bias), and a candidate subset ``tails[b, k]`` one batched dot product of the same query vector
    (the network is never recomputed per candidate).

    Args:
        embedding_height: height of the image each ``embedding_dim`` vector is reshaped to (width
            ``embedding_dim / embedding_height``); the stacked input is ``2 * height x width``.
        num_filters, kernel_size: the convolution (no padding, stride 1).
        input_dropout, feature_map_dropout, hidden_dropout: dropout on the stacked input image, on the feature
            maps (channel-wise) and after the projection.
        embedding_dropout: dropout on the entity embeddings the network's output is scored against (in training;
            MultiHopKG's ``emb_dropout_rate``, 0.3 on UMLS and FB15k-237, drops them too, as well as the query's
            embeddings, which ``input_dropout`` covers here).
        feature_batch_norm: batch-norm the feature maps (Dettmers et al.; MultiHopKG's ConvE has this layer
            commented out: ``False`` gives its network).
        feature_map_dropout_mode: ``"channel"`` (``Dropout2d``: whole feature maps per example, as in Dettmers
            et al.'s paper) or ``"element"`` (``Dropout``: single pixels, as in Dettmers et al.'s and MultiHopKG's
            code).

    Defaults follow Dettmers et al. (and MultiHopKG): ``embedding_dim=200`` as a 10 x 20 image, 32 filters of
    3 x 3, batch-norm on input, feature maps and projection, dropouts 0.2 / 0.2 / 0.3 and 0.3 on the scored
    entity embeddings (UMLS test tail MRR 0.937 -> 0.950 with it, early stopping on dev), per-entity bias,
    Xavier-normal embeddings; ``inverse_relations=True`` (reciprocal relations; without them ``score_h`` and
    ``score_r`` run the network for every candidate, exact but slow). ``default_training``: LCWA (1-N), BCE
    with label smoothing 0.1, Adam lr 3e-3, batch 128, 300 epochs.
    """

    default_training: ClassVar[dict[str, Any]] = {
        "loop": "lcwa",
        "loss": "bce",
        "label_smoothing": 0.1,
        "optimizer": "adam",
        "lr": 3e-3,
        "batch_size": 128,
        "epochs": 300,
    }
    fallback_chunk_rows = 1024
    patch_index: torch.Tensor

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        embedding_dim: int = 200,
        inverse_relations: bool = True,
        embedding_height: int = 10,
        num_filters: int = 32,
        kernel_size: int = 3,
        input_dropout: float = 0.2,
        feature_map_dropout: float = 0.2,
        hidden_dropout: float = 0.3,
        embedding_dropout: float = 0.3,
        feature_batch_norm: bool = True,
        feature_map_dropout_mode: str = "channel",
        regularizer: str | None = None,
        regularizer_kwargs: dict[str, Any] | None = None,
        entity_initializer: str | None = None,
        relation_initializer: str | None = None,
    ) -> None:
        super().__init__(
            num_entities,
            num_relations,
            embedding_dim,
            inverse_relations,
            regularizer,
            regularizer_kwargs,
            entity_initializer,
            relation_initializer,
        )
        d = self.embedding_dim
        if embedding_height < 1 or d % embedding_height:
            raise ValueError(
                f"ConvE: embedding_dim={d} is not divisible by embedding_height={embedding_height} "
                "(the embedding is reshaped to a height x width image)"
            )
        if feature_map_dropout_mode not in ("channel", "element"):
            raise ValueError(
                f"ConvE: feature_map_dropout_mode must be 'channel' or 'element', got {feature_map_dropout_mode!r}"
            )
        width = d // embedding_height
        out_h, out_w = 2 * embedding_height - kernel_size + 1, width - kernel_size + 1
        if out_h < 1 or out_w < 1:
            raise ValueError(
                f"ConvE: kernel_size={kernel_size} is larger than the {2 * embedding_height} x {width} input image"
            )
        self.embedding_height, self.embedding_width = int(embedding_height), int(width)
        self._extra_config = {
            "embedding_height": int(embedding_height),
            "num_filters": int(num_filters),
            "kernel_size": int(kernel_size),
            "input_dropout": float(input_dropout),
            "feature_map_dropout": float(feature_map_dropout),
            "hidden_dropout": float(hidden_dropout),
            "embedding_dropout": float(embedding_dropout),
            "feature_batch_norm": bool(feature_batch_norm),
            "feature_map_dropout_mode": str(feature_map_dropout_mode),
        }
        self.entity = nn.Embedding(self.num_entities, d)
        self.relation = nn.Embedding(self.num_relations_embedded, d)
        self.entity_bias = nn.Parameter(torch.zeros(self.num_entities))
        self.bn_input = nn.BatchNorm2d(1)
        self.input_dropout = nn.Dropout(input_dropout)
        self.conv = nn.Conv2d(1, num_filters, kernel_size, bias=True)
        self.bn_features = nn.BatchNorm2d(num_filters) if feature_batch_norm else None
        self.feature_map_dropout_mode = feature_map_dropout_mode
        self.feature_map_dropout: nn.Dropout | nn.Dropout2d = (
            nn.Dropout2d(feature_map_dropout)
            if feature_map_dropout_mode == "channel"
            else nn.Dropout(feature_map_dropout)
        )
        self.fc = nn.Linear(num_filters * out_h * out_w, d)
        self.hidden_dropout = nn.Dropout(hidden_dropout)
        self.bn_hidden = nn.BatchNorm1d(d)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        # patches[b, k, l] = image[b].flatten()[patch_index[k * L + l]]: the k-th of the kernel's pixels at output
        # position l (row-major), so the convolution is one batched matmul [C, k*k] @ [k*k, L] (see _feature_maps)
        rows = torch.arange(out_h)[:, None, None, None] + torch.arange(kernel_size)[None, None, :, None]
        cols = torch.arange(out_w)[None, :, None, None] + torch.arange(kernel_size)[None, None, None, :]
        index = (rows * width + cols).reshape(out_h * out_w, kernel_size * kernel_size).t().reshape(-1)
        self.register_buffer("patch_index", index, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self._initialize(self.entity.weight, "entity", "xavier_normal")
        self._initialize(self.relation.weight, "relation", "xavier_normal")
        nn.init.zeros_(self.entity_bias)
        for module in (self.conv, self.fc, self.bn_input, self.bn_features, self.bn_hidden):
            if module is not None:
                module.reset_parameters()

    def query(self, h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """The network's output for queries ``(h[b], r[b])``: ``FloatTensor[b, embedding_dim]``."""
        x, w = self.entity(h), self.relation(r)
        self._regularize(x, w)
        shape = (-1, 1, self.embedding_height, self.embedding_width)
        img = torch.cat([x.view(shape), w.view(shape)], dim=2)  # [b, 1, 2 * height, width]
        img = fast_dropout(self.bn_input(img), self.input_dropout.p, self.training)
        hidden = fast_dropout(self.fc(self._feature_maps(img)), self.hidden_dropout.p, self.training)
        return torch.relu(self._batch_norm(self.bn_hidden, hidden))

    def _feature_maps(self, img: torch.Tensor) -> torch.Tensor:
        """``Dropout2d(relu(bn_features(conv(img))))`` flattened to ``[b, C * L]``, computed in one pass.

        The convolution becomes a batched matmul over image patches (gathered with one ``index_select``); the
        batch norm's statistics follow from the patches' mean and 9 x 9 second moments (the convolution is linear),
        so the batch norm folds into the convolution's weights and bias, and the channel-wise dropout mask folds
        into per-example weights. One ``baddbmm`` then writes the normalised, dropped feature maps and one
        in-place ``relu_`` finishes them: the ``[b, C, L]`` tensor is written once, instead of once per layer
        (three layers and their backward passes were 60% of a training step). Same values, gradients and
        running statistics as the layers applied one after another (tests/models/test_conve.py). Without
        ``feature_batch_norm`` the convolution's own bias is the shift; ``"element"`` dropout multiplies the
        finished maps by a per-pixel mask instead.
        """
        b, bn, conv = img.shape[0], self.bn_features, self.conv
        kk = conv.weight[0].numel()
        patches = img.reshape(b, -1).index_select(1, self.patch_index).view(b, kk, -1)  # [b, k*k, L]
        weight = conv.weight.view(-1, kk)  # [C, k*k]
        shift = conv.bias if conv.bias is not None else weight.new_zeros(weight.shape[0])  # [C]
        if bn is not None:
            if self.training or bn.running_mean is None or bn.running_var is None:  # batch statistics
                with torch.autocast(img.device.type, enabled=False):  # statistics in full precision
                    x = patches.float()
                    n = b * x.shape[2]
                    mean, second = _PatchMoments.apply(x)
                    w = weight.float()
                    mu = w @ mean + shift
                    var = ((w @ (second - torch.outer(mean, mean))) * w).sum(1).clamp_min(0.0)
                if self.training:
                    self._update_running_stats(bn, mu.detach(), var.detach(), n)
            else:
                mu, var = bn.running_mean, bn.running_var
            scale = bn.weight / torch.sqrt(var + bn.eps)
            shift = bn.bias + (shift - mu) * scale  # [C]
            weight = weight * scale[:, None]
        p = self.feature_map_dropout.p if self.training else 0.0
        if p > 0.0 and self.feature_map_dropout_mode == "channel":
            keep = torch.rand(b, weight.shape[0], device=img.device).ge_(p).mul_(1.0 / (1.0 - p))  # [b, C]
            out = torch.baddbmm((shift * keep)[:, :, None], weight * keep[:, :, None], patches)
        else:
            out = torch.matmul(weight, patches).add_(shift[:, None])
        out = out.relu_()
        if p > 0.0 and self.feature_map_dropout_mode == "element":
            out = fast_dropout(out, p)
        return out.flatten(1)

    @staticmethod
    def _update_running_stats(bn: nn.BatchNorm2d, mean: torch.Tensor, var: torch.Tensor, n: int) -> None:
        """What ``nn.BatchNorm2d`` does in training: exponential (or cumulative) averages, unbiased variance."""
        tracked = bn.num_batches_tracked
        if not bn.track_running_stats or bn.running_mean is None or bn.running_var is None or tracked is None:
            return
        with torch.no_grad():
            tracked.add_(1)
            momentum = 1.0 / float(tracked) if bn.momentum is None else bn.momentum
            bn.running_mean.lerp_(mean.to(bn.running_mean.dtype), momentum)
            unbiased = var * (n / max(n - 1, 1))
            bn.running_var.lerp_(unbiased.to(bn.running_var.dtype), momentum)

    def _score_t(self, h: torch.Tensor, r: torch.Tensor, tails: torch.Tensor | None) -> torch.Tensor:
        q = self.query(h, r)
        if tails is not None and self._regularizing:
            self._regularize(gather(self.entity.weight, tails))
        table = fast_dropout(self.entity.weight, self.embedding_dropout.p, self.training)
        return dot_scores(q, table, tails) + gather(self.entity_bias, tails)
