"""Channel pruning: a narrow `LiveNet` made of the channels of a wide one that matter most.

    narrow = prune(wide, width=32, mid_width=64)   # then distil: training/train_live.py --distill-from

Importance is measured on the weights, after Li et al. ("Pruning Filters for Efficient ConvNets", ICLR
2017): a channel that is written with small filters and read with small weights contributes little. For
each channel, the L1 norm of every filter that writes it and of every weight that reads it is divided by the
mean norm in its layer (layers differ in scale) and the writes and reads are summed; importance = writes ×
reads (a channel that is never read, or never written, matters not at all).

Two kinds of channel are pruned:
- the residual streams, one set of kept channels per resolution (1/4: stem, every block's output, the
  up-sampling's output, the head's input; 1/8: the down-sampling's output, the middle blocks', the
  up-sampling's input): a stream's channels must be the same across every layer that adds to it;
- each block's hidden channels (conv1's output, FiLM-modulated, read by conv2), chosen per block.
The FiLM generator's last layer keeps the γ and β rows of the kept hidden channels. The narrow net is a
copy of the wide one on those channels: it starts close to the wide net, and distillation recovers the rest.
"""

from __future__ import annotations

import torch
from torch import nn

from framefleet.models.live.net import FiLMResBlock, LiveNet


def _conv(m: nn.Module) -> nn.Conv2d:
    assert isinstance(m, nn.Conv2d) and m.bias is not None
    return m


def _linear(m: nn.Module) -> nn.Linear:
    assert isinstance(m, nn.Linear)
    return m


def _blocks(ml: nn.ModuleList) -> list[FiLMResBlock]:
    out = [b for b in ml if isinstance(b, FiLMResBlock)]
    assert len(out) == len(ml)
    return out


def _norm(x: torch.Tensor) -> torch.Tensor:
    return x / x.mean().clamp_min(1e-12)


def _rows(conv: nn.Conv2d) -> torch.Tensor:
    """L1 norm of each output filter: [C_out]."""
    return _norm(conv.weight.detach().abs().sum(dim=(1, 2, 3)))


def _cols(conv: nn.Conv2d | nn.Linear) -> torch.Tensor:
    """L1 norm of the weights reading each input channel: [C_in]."""
    w = conv.weight.detach().abs()
    return _norm(w.sum(dim=(0, 2, 3)) if w.dim() == 4 else w.sum(dim=0))


def _top(score: torch.Tensor, k: int) -> torch.Tensor:
    return torch.sort(torch.topk(score, k).indices).values


def _up_rows_per_channel(up: nn.Conv2d) -> torch.Tensor:
    """The 1×1 up-sampling conv writes stream channel c through rows 4c..4c+3 (PixelShuffle(2)): [C]."""
    r = up.weight.detach().abs().sum(dim=(1, 2, 3))  # [4C]
    return _norm(r.view(-1, 4).sum(dim=1))


def stream_importance(net: LiveNet) -> tuple[torch.Tensor, torch.Tensor]:
    """(quarter [width], eighth [mid_width]) importance of the two residual streams' channels."""
    stem, up, head = _conv(net.stem[1]), _conv(net.up[0]), _conv(net.head[0])
    q_blocks, mid = _blocks(net.enc) + _blocks(net.dec), _blocks(net.mid)
    q_write = _rows(stem) + _up_rows_per_channel(up) + torch.stack([_rows(b.conv2) for b in q_blocks]).sum(0)
    q_read = _cols(net.down) + _cols(head) + torch.stack([_cols(b.conv1) for b in q_blocks]).sum(0)
    e_write = _rows(net.down) + torch.stack([_rows(b.conv2) for b in mid]).sum(0)
    e_read = _cols(up) + torch.stack([_cols(b.conv1) for b in mid]).sum(0)
    return q_write * q_read, e_write * e_read


def _copy_block(src: FiLMResBlock, dst: FiLMResBlock, stream: torch.Tensor, hidden: torch.Tensor) -> None:
    dst.conv1.weight.copy_(src.conv1.weight[hidden][:, stream])
    dst.conv2.weight.copy_(src.conv2.weight[stream][:, hidden])
    assert src.conv1.bias is not None and dst.conv1.bias is not None
    assert src.conv2.bias is not None and dst.conv2.bias is not None
    dst.conv1.bias.copy_(src.conv1.bias[hidden])
    dst.conv2.bias.copy_(src.conv2.bias[stream])


@torch.no_grad()
def prune(wide: LiveNet, width: int, mid_width: int) -> LiveNet:
    """A LiveNet with `width` and `mid_width` channels copied from `wide`'s most important ones."""
    cfg = wide.config
    if width > cfg["width"] or mid_width > cfg["mid_width"]:
        raise ValueError(f"cannot prune {cfg['width']}/{cfg['mid_width']} channels up to {width}/{mid_width}")
    narrow = LiveNet(
        width=width,
        mid_width=mid_width,
        cond_dim=cfg["cond_dim"],
        blocks=tuple(cfg["blocks"]),
        film_hidden=cfg["film_hidden"],
        prev_input=cfg["prev_input"],
    )
    q_score, e_score = stream_importance(wide)
    q, e = _top(q_score, width), _top(e_score, mid_width)
    pairs = [(s, d, q, width) for s, d in zip(_blocks(wide.enc), _blocks(narrow.enc), strict=True)]
    pairs += [(s, d, e, mid_width) for s, d in zip(_blocks(wide.mid), _blocks(narrow.mid), strict=True)]
    pairs += [(s, d, q, width) for s, d in zip(_blocks(wide.dec), _blocks(narrow.dec), strict=True)]
    film_rows: list[torch.Tensor] = []
    offset = 0
    for src, dst, stream, k in pairs:
        hidden = _top(_rows(src.conv1) * _cols(src.conv2), k)
        _copy_block(src, dst, stream, hidden)
        film_rows.append(offset + hidden)
        offset += src.conv1.out_channels
    rows = torch.cat(film_rows)
    rows = torch.cat([rows, offset + rows])  # γ rows, then β rows
    _copy_conv(_conv(wide.stem[1]), _conv(narrow.stem[1]), q, None)
    _copy_conv(_conv(wide.down), _conv(narrow.down), e, q)
    up_rows = (4 * q[:, None] + torch.arange(4)[None, :]).reshape(-1)  # PixelShuffle's channel order
    _copy_conv(_conv(wide.up[0]), _conv(narrow.up[0]), up_rows, e)
    _copy_conv(_conv(wide.head[0]), _conv(narrow.head[0]), None, q)
    narrow.film[0].load_state_dict(wide.film[0].state_dict())
    src_film, dst_film = _linear(wide.film[2]), _linear(narrow.film[2])
    dst_film.weight.copy_(src_film.weight[rows])
    dst_film.bias.copy_(src_film.bias[rows])
    return narrow


def _copy_conv(src: nn.Conv2d, dst: nn.Conv2d, rows: torch.Tensor | None, cols: torch.Tensor | None) -> None:
    """dst ← src restricted to output channels `rows` and input channels `cols` (None: all)."""
    w = src.weight if rows is None else src.weight[rows]
    dst.weight.copy_(w if cols is None else w[:, cols])
    assert src.bias is not None and dst.bias is not None
    dst.bias.copy_(src.bias if rows is None else src.bias[rows])
