"""The Python leak tooling peer of the inspector benchmark (workload 7).

    python3 pytools.py N

Builds in CPython the heap shape bench_rc builds for its core ("mixed"):
a root list holding N/2 objects chained to each other, and N/4 unreachable
two-object cycles, every object an instance of a class with two __slots__
(refscope's Node: 48 bytes, two references). Then analyses it the way
Python's own tools can:

  load      gc.get_objects() and gc.get_referents() of each: the graph
  cycles    the objects no root reaches (a root: an object with more
            references than the graph explains, sys.getrefcount), and their
            strongly connected components (an iterative Tarjan): the
            unreachable cycles, what `refscope cycles` reports
  leaks     objgraph.get_leaking_objects() when objgraph is installed
            (Debian python3-objgraph; objects no tracked object refers to),
            else the same test on the graph built above

There is no dominator pass (`refscope retained`): Python's tooling has no
equivalent, so the Python side does less work than the inspector.

Prints one line, as the C benchmark programs do (see bench.h), with the
thread's CPU time of each phase (time.thread_time_ns):
    bench=pytools peer=python n=N cpu_ns=... load_cpu_ns=... cycles_cpu_ns=...
    leaks_cpu_ns=... garbage=... sccs=... objgraph=0|1
"""

import gc
import sys
import time


class Node:
    __slots__ = ("next", "other")

    def __init__(self, nxt, other):
        self.next = nxt
        self.other = other


def build(n):
    gc.disable()
    leaf = 1
    reachable = []
    prev = reachable  # the first object refers to the root list, as in bench_rc
    for _ in range(n // 2):
        o = Node(prev, leaf)
        reachable.append(o)
        prev = o
    for _ in range((n - n // 2) // 2):
        a = Node(None, leaf)
        b = Node(a, leaf)
        a.next = b
    del a, b, o, prev
    return reachable


def analyse(objs):
    """(load_ns, cycles_ns, garbage, sccs, index, edges) over objs."""
    t0 = time.thread_time_ns()
    index = {id(o): i for i, o in enumerate(objs)}
    edges = []
    indeg = [0] * len(objs)
    get = index.get
    for o in objs:
        out = []
        for r in gc.get_referents(o):
            j = get(id(r))
            if j is not None:
                out.append(j)
                indeg[j] += 1
        edges.append(out)
    t1 = time.thread_time_ns()

    # Roots: references the graph does not explain (getrefcount counts its
    # own argument, the local `o` and the list `objs`).
    getrefcount = sys.getrefcount
    marked = bytearray(len(objs))
    stack = []
    for i in range(len(objs)):
        o = objs[i]
        if getrefcount(o) - 3 > indeg[i]:
            marked[i] = 1
            stack.append(i)
    o = None
    while stack:
        i = stack.pop()
        for j in edges[i]:
            if not marked[j]:
                marked[j] = 1
                stack.append(j)
    garbage = [i for i in range(len(objs)) if not marked[i]]

    # Tarjan's strongly connected components of the garbage, iteratively.
    in_garbage = bytearray(len(objs))
    for i in garbage:
        in_garbage[i] = 1
    num = [0] * len(objs)
    low = [0] * len(objs)
    on_stack = bytearray(len(objs))
    scc_stack = []
    counter = 1
    sccs = 0
    for root in garbage:
        if num[root]:
            continue
        work = [(root, 0)]
        num[root] = low[root] = counter
        counter += 1
        scc_stack.append(root)
        on_stack[root] = 1
        while work:
            v, k = work[-1]
            succ = edges[v]
            if k < len(succ):
                work[-1] = (v, k + 1)
                w = succ[k]
                if not in_garbage[w]:
                    continue
                if not num[w]:
                    num[w] = low[w] = counter
                    counter += 1
                    scc_stack.append(w)
                    on_stack[w] = 1
                    work.append((w, 0))
                elif on_stack[w] and num[w] < low[v]:
                    low[v] = num[w]
                continue
            work.pop()
            if work:
                u = work[-1][0]
                if low[v] < low[u]:
                    low[u] = low[v]
            if low[v] == num[v]:
                size = 0
                while True:
                    w = scc_stack.pop()
                    on_stack[w] = 0
                    size += 1
                    if w == v:
                        break
                if size > 1 or v in edges[v]:
                    sccs += 1
    t2 = time.thread_time_ns()
    return t1 - t0, t2 - t1, len(garbage), sccs, indeg


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: pytools.py N")
    n = int(sys.argv[1].replace("M", "000000").replace("k", "000"))
    root = build(n)
    try:
        import objgraph
    except ImportError:
        objgraph = None

    t0 = time.thread_time_ns()
    objs = gc.get_objects()
    t_get = time.thread_time_ns() - t0
    load_ns, cycles_ns, garbage, sccs, indeg = analyse(objs)
    load_ns += t_get

    t0 = time.thread_time_ns()
    if objgraph is not None:
        leaking = len(objgraph.get_leaking_objects(objs))
    else:
        leaking = sum(1 for d in indeg if d == 0)
    leaks_ns = time.thread_time_ns() - t0

    print("bench=pytools peer=python n=%d cpu_ns=%d load_cpu_ns=%d cycles_cpu_ns=%d "
          "leaks_cpu_ns=%d objects=%d garbage=%d sccs=%d leaking=%d objgraph=%d python=%s"
          % (n, load_ns + cycles_ns + leaks_ns, load_ns, cycles_ns, leaks_ns, len(objs),
             garbage, sccs, leaking, objgraph is not None, sys.version.split()[0]))
    del root


if __name__ == "__main__":
    main()
