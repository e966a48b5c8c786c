"""Pictures of retrieval results: ranked lists drawn with Pillow (`reid visualize`).

    from reidcli.visualize import RankOptions, render_ranklist
    render_ranklist(RankOptions(source="feats.h5", queries=[0, 5], k=10, output="ranks.png"))
"""

from reidcli.visualize.draw import Layout, TileStyle, draw_ranklists
from reidcli.visualize.ranking import Match, MatchKind, RankedQuery, classify, rank_queries
from reidcli.visualize.ranklist import RankOptions, RankResult, parse_queries, render_ranklist

__all__ = [
    "Layout",
    "Match",
    "MatchKind",
    "RankOptions",
    "RankResult",
    "RankedQuery",
    "TileStyle",
    "classify",
    "draw_ranklists",
    "parse_queries",
    "rank_queries",
    "render_ranklist",
]
