"""RSS against idle websockets for every stack of a benchmark run, as a PNG: the
proxy's, the wss's, and beside them the machine's kernel memory (sockets' TCP
buffers and slab, the servers' share: see bench/src/kernel.rs).

Usage: python bench/chart.py RESULTS.json OUT.png
(scripts/bench runs it with matplotlib from PyPI in a virtual environment.)
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def kernel_mb(before, m, proxy):
    """The kernel's memory added since `before`, machine-wide TCP buffers + slab
    scaled by the servers' share of one websocket's sockets (3/4 through a proxy, 1/2
    without), MB."""
    page = 4096
    tcp = (m["sockstat"]["tcp_mem_pages"] - before["sockstat"]["tcp_mem_pages"]) * page
    slab = m["kernel_slab"] - before["kernel_slab"]
    share = 0.5 if proxy == "none" else 0.75
    return (tcp + slab) * share / 1e6


def main(results_path, out_path):
    with open(results_path) as f:
        results = json.load(f)
    meta = results["meta"]
    fig, axes = plt.subplots(1, 3, figsize=(19, 6.5), dpi=110)
    colors = plt.get_cmap("tab20").colors
    names = [s["stack"]["name"] for s in results["stacks"]]
    # One color per stack in every panel.
    color_of = {n: colors[(2 * i) % 20 + (2 * i) // 20 % 2] for i, n in enumerate(names)}
    for ax, server in zip(axes, ["proxy", "wss", "kernel"]):
        series = []
        for stack in results["stacks"]:
            memory = stack.get("memory") or []
            if not stack.get("started") or len(memory) < 2:
                continue
            # A stack without a proxy (plain ws to the wss) has no proxy line.
            if server == "proxy" and stack["stack"]["proxy"] == "none":
                continue
            x = [m["connections"] for m in memory]
            if server == "kernel":
                y = [kernel_mb(memory[0], m, stack["stack"]["proxy"]) for m in memory]
            else:
                y = [m[f"{server}_rss"] / 1e6 for m in memory]
            series.append((stack, x, y))
        # A series far above the others (warp::ws's 128 KiB buffers) would flatten
        # them: the axis stops above the rest and the outlier's top value is written.
        # Several such series (warp::ws and our wss on warp): a log scale instead.
        tops = sorted(max(y) for _, _, y in series)
        limit = None
        log = len(tops) > 3 and tops[-1] > 8 * tops[len(tops) // 2] and tops[-3] > 4 * tops[len(tops) // 2]
        if not log and len(tops) > 2 and tops[-1] > 4 * tops[-2]:
            limit = tops[-2] * 1.35
        for stack, x, y in series:
            kind = stack["stack"]["wss" if server == "kernel" else server]
            # Solid: our slab stack; dash-dot: our warp stack; dashed: a peer.
            style = "-." if kind == "ours-warp" else "-" if kind == "ours" else "--"
            (line,) = ax.plot(
                x, y, style, marker="o", color=color_of[stack["stack"]["name"]],
                label=stack["stack"]["name"],
            )
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
        if server == "kernel":
            ax.set_title("kernel: TCP buffers + slab, servers' share (MB)" + (", log scale" if log else ""))
            ax.set_ylabel("machine-wide difference x servers' share of the sockets, MB")
        else:
            ax.set_title(f"{server} RSS (MB)" + (", log scale" if log else ""))
            ax.set_ylabel("RSS, MB")
        ax.set_xlabel("idle websockets (TLS through the proxy, or plain ws) + the data connection")
        ax.grid(True, alpha=0.3, which="both")
        if log:
            ax.set_yscale("log")
        elif server != "kernel":
            ax.set_ylim(bottom=0)
        ax.set_xlim(left=0)
    machine = meta.get("machine", {})
    fig.suptitle(
        f"Memory per idle websocket, {meta['date']} UTC, "
        f"{machine.get('cores', '?')} cores ({machine.get('cpu', '?')}); "
        f"solid: our server (slab stack), dash-dot: our server on warp, dashed: a peer"
        + (" - QUICK sizes, not a measurement" if meta.get("quick") else ""),
        fontsize=10,
    )
    # Every stack once (the wss panel has them all: some have no proxy).
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(out_path)
    print(f"chart: {out_path}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
