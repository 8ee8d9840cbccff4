"""RSS against idle websockets for every stack of a benchmark run, as a PNG.

Usage: python bench/chart.py RESULTS.json OUT.png
(scripts/bench runs it with matplotlib from PyPI in a virtual environment.)
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(results_path, out_path):
    with open(results_path) as f:
        results = json.load(f)
    meta = results["meta"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 6), dpi=110)
    for ax, server in zip(axes, ["proxy", "wss"]):
        series = []
        for stack in results["stacks"]:
            memory = stack.get("memory") or []
            if not stack.get("started") or len(memory) < 2:
                continue
            x = [m["connections"] for m in memory]
            y = [m[f"{server}_rss"] / 1e6 for m in memory]
            series.append((stack, x, y))
        # A series far above the others (warp::ws's 128 KiB buffers) would flatten
        # them: the axis stops above the rest and the outlier's top value is written.
        tops = sorted(max(y) for _, _, y in series)
        limit = None
        if len(tops) > 2 and tops[-1] > 4 * tops[-2]:
            limit = tops[-2] * 1.35
        for stack, x, y in series:
            kind = stack["stack"][server]
            style = "-" if kind.startswith("ours") else "--"
            (line,) = ax.plot(x, y, style, marker="o", label=stack["stack"]["name"])
            if limit is not None and max(y) > limit:
                inside = [(a, b) for a, b in zip(x, y) if b <= limit]
                ax.annotate(
                    f"{stack['stack']['name']}: {max(y):.0f} MB at {x[-1]} (off the scale)",
                    xy=inside[-1] if inside else (x[0], 0),
                    xytext=(0.25, 0.93),
                    textcoords="axes fraction",
                    color=line.get_color(),
                    fontsize=8,
                    arrowprops={"arrowstyle": "->", "color": line.get_color()},
                )
        if limit is not None:
            ax.set_ylim(top=limit)
        ax.set_title(f"{server} RSS (MB)")
        ax.set_xlabel("idle TLS websockets through the proxy (+ the data connection)")
        ax.set_ylabel("RSS, MB")
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.set_xlim(left=0)
    machine = meta.get("machine", {})
    fig.suptitle(
        f"Memory per idle websocket, {meta['date']} UTC, "
        f"{machine.get('cores', '?')} cores ({machine.get('cpu', '?')}); "
        f"solid: our server, dashed: a peer"
        + (" - QUICK sizes, not a measurement" if meta.get("quick") else ""),
        fontsize=10,
    )
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(out_path)
    print(f"chart: {out_path}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
