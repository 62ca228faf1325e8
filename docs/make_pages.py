"""Generate the documentation pages that share their text with the README (one source for
the prose and every measured number): each README section becomes a page under docs/.
Run before ``mkdocs build`` (``.ci/run`` does)::

    python docs/make_pages.py && mkdocs build --strict
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = {  # page: (title, README section)
    "mixedlm.md": ("MixedLM", "MixedLM"),
    "mixedglm.md": ("MixedGLM", "MixedGLM"),
    "additive.md": ("AdditiveMixed", "AdditiveMixed"),
    "formulas.md": ("Several grouping factors and formulas",
                    "Several grouping factors and formulas"),
    "outofcore.md": ("Out of core and Dask", "Out of core: Parquet and chunks"),
    "inference.md": ("Inference: intervals, tests, model comparison, simulation",
                     "Inference: intervals, tests, model comparison, simulation"),
    "datasets.md": ("Data sets", "Data sets"),
    "kernels.md": ("Compiled kernels", "Compiled kernels"),
    "benchmarks.md": ("Benchmarks", "Benchmarks"),
}


def section(readme, title):
    match = re.search(r"^## " + re.escape(title) + r"\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
    if match is None:
        raise SystemExit(f"README.md has no section '## {title}'")
    return match.group(1).strip()


def main():
    readme = (ROOT / "README.md").read_text()
    intro = readme.split("\n## MixedLM", 1)[0].split("\n", 1)[1].strip()
    pages = {"index.md": ("skmixed", intro)}
    pages.update({name: (title, section(readme, heading))
                  for name, (title, heading) in PAGES.items()})
    for name, (title, body) in pages.items():
        # README-relative links to repository files become plain text in the site
        (ROOT / "docs" / name).write_text(f"<!-- generated from README.md by "
                                          f"docs/make_pages.py -->\n# {title}\n\n{body}\n")
    print(f"wrote {len(pages)} pages from README.md")


if __name__ == "__main__":
    main()
