"""Trains the `implicit` package's ALS on a split written by
`shopgrowth recommend eval --write-split DIR` and scores it exactly as shopgrowth does:
for every test user, rank all items not in their training set, nDCG@k with binary relevance
and IDCG over min(k, relevant). Prints one JSON object.

usage: python3 implicit_als.py DIR FACTORS REGULARIZATION ALPHA ITERATIONS [K] [SEED]
"""
import json
import sys
import time

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits


def load(path):
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    return data[:, 0].astype(np.int64), data[:, 1].astype(np.int64)


def main():
    folder, factors, reg, alpha, iterations = sys.argv[1:6]
    k = int(sys.argv[6]) if len(sys.argv) > 6 else 10
    seed = int(sys.argv[7]) if len(sys.argv) > 7 else 42
    tu, ti = load(f"{folder}/train.csv")
    su, si = load(f"{folder}/test.csv")
    users = int(max(tu.max(), su.max())) + 1
    items = int(max(ti.max(), si.max())) + 1
    train = sp.csr_matrix((np.ones(len(tu), dtype=np.float32), (tu, ti)), shape=(users, items))
    train.data[:] = 1.0  # duplicates summed by csr; binary like shopgrowth's protocol B
    model = AlternatingLeastSquares(
        factors=int(factors),
        regularization=float(reg),
        alpha=float(alpha),
        iterations=int(iterations),
        use_cg=True,
        num_threads=0,
        random_state=seed,
        calculate_training_loss=False,
    )
    with threadpool_limits(limits=1, user_api="blas"):
        started = time.perf_counter()
        model.fit(train, show_progress=False)
        fit_seconds = time.perf_counter() - started
    relevant = {}
    for u, i in zip(su, si):
        relevant.setdefault(int(u), set()).add(int(i))
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    uf, itf = model.user_factors, model.item_factors
    total = 0.0
    for u, rel in relevant.items():
        scores = itf @ uf[u]
        scores[train.indices[train.indptr[u]:train.indptr[u + 1]]] = -np.inf
        top = np.argpartition(-scores, k)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        dcg = sum(discounts[r] for r, item in enumerate(top) if int(item) in rel)
        idcg = discounts[: min(k, len(rel))].sum()
        total += dcg / idcg
    print(json.dumps({
        "model": "implicit.als",
        "version": __import__("implicit").__version__,
        "fit_seconds": fit_seconds,
        "ndcg": total / len(relevant),
        "users": len(relevant),
    }))


if __name__ == "__main__":
    main()
