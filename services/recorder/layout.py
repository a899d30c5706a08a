"""Where each feed goes in a composite picture (seed 002 appendix 7 `layoutParam`, `tagPositions`, and
Parley's `layout`): pure geometry, no media.

- Order: with `layoutParam` [tag1, tag2, ...], the feeds of those tags in that order, and no other
  feed in the picture (the recorder reports 100007 for a feed left out); without it, the feeds in the
  order they joined the recording.
- `tagPositions` given: each listed tag's feed in its own rectangle (custom layout), other feeds not
  drawn.
- Otherwise `layout` "grid" (default): equal cells, columns = ceil(sqrt(n)); "pip": the first feed
  the whole picture, the others a quarter of its size along its bottom edge, from the right.
A feed's picture keeps its aspect ratio inside its cell, centred (the background shows around it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.recorder.params import Layout, RecordOptions, Rect

# Gap between picture-in-picture insets and the picture's edge, in pixels.
_PIP_MARGIN = 8


@dataclass(frozen=True)
class Placed:
    feed_id: str
    tag: str
    cell: Rect

    def fit(self, width: int, height: int) -> Rect:
        """The largest rectangle of a width x height picture's aspect inside the cell, centred, even."""
        cell = self.cell
        scale = min(cell.width / max(width, 1), cell.height / max(height, 1))
        w = max(2, int(width * scale) // 2 * 2)
        h = max(2, int(height * scale) // 2 * 2)
        x = (cell.x + (cell.width - w) // 2) // 2 * 2
        y = (cell.y + (cell.height - h) // 2) // 2 * 2
        return Rect(x, y, w, h)


def in_layout(tag: str, options: RecordOptions) -> bool:
    """Whether a feed of that tag is drawn at all (layoutParam / tagPositions name the tags drawn)."""
    if options.tag_positions:
        return tag in options.tag_positions
    return not options.layout_tags or tag in options.layout_tags


def place(feeds: list[tuple[str, str]], options: RecordOptions) -> list[Placed]:
    """The cells of `feeds` ((feed_id, tag) in the order they joined) in a picture of options' size."""
    if options.tag_positions:
        return [
            Placed(feed_id, tag, options.tag_positions[tag])
            for feed_id, tag in feeds
            if tag in options.tag_positions
        ]
    if options.layout_tags:
        rank = {tag: index for index, tag in enumerate(options.layout_tags)}
        feeds = sorted((f for f in feeds if f[1] in rank), key=lambda f: rank[f[1]])
    if not feeds:
        return []
    width, height = options.width, options.height
    if options.layout is Layout.PIP:
        inset_w, inset_h = width // 4 // 2 * 2, height // 4 // 2 * 2
        placed = [Placed(feeds[0][0], feeds[0][1], Rect(0, 0, width, height))]
        for index, (feed_id, tag) in enumerate(feeds[1:]):
            x = width - (index + 1) * (inset_w + _PIP_MARGIN)
            y = height - inset_h - _PIP_MARGIN
            placed.append(Placed(feed_id, tag, Rect(max(0, x), y, inset_w, inset_h)))
        return placed
    columns = math.ceil(math.sqrt(len(feeds)))
    rows = math.ceil(len(feeds) / columns)
    cell_w, cell_h = width // columns // 2 * 2, height // rows // 2 * 2
    return [
        Placed(feed_id, tag, Rect((index % columns) * cell_w, (index // columns) * cell_h, cell_w, cell_h))
        for index, (feed_id, tag) in enumerate(feeds)
    ]
