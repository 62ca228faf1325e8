"""reST cross-reference roles (``:class:`~skmixed.MixedLM```) as Markdown for the API page.

skmixed's docstrings are Markdown with mkdocstrings cross-references
(``[`MixedLM`][skmixed.MixedLM]``). `convert` rewrites a text's reST roles that way:
a role whose target is rendered on the API page (a name of ``docs/api.md``'s ``:::``
lines, or a documented public method of such a class) becomes a link, any other a plain
``code`` span. ``RestRoles`` applies it, as a griffe extension (``mkdocs.yml``), to the
docstrings of the modules in ``MODULES`` only: files whose roles were not converted in the
source yet. Not part of the site (``exclude_docs``).
"""

import ast
import importlib
import inspect
import re
from functools import lru_cache
from pathlib import Path

import griffe

API_PAGE = Path(__file__).resolve().parents[1] / "api.md"
# modules whose docstrings still hold reST roles (owned by other changes at the time):
# converted when the site is built; convert them in the source, then drop them here
MODULES = ("skmixed.plots", "skmixed.study")
ROLE = re.compile(r":(?:py:)?(class|func|meth|mod|attr|data|exc|obj):`(~?)([^`<]+?)"
                  r"(?:\s*<([^>`]+)>)?`")


def _lookup(path):
    """The object at the dotted ``path`` (a module, or attributes of one), or None."""
    parts = path.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        try:
            for name in parts[k:]:
                obj = getattr(obj, name)
        except AttributeError:
            return None
        return obj
    return None


@lru_cache(maxsize=1)
def rendered():
    """``{anchor: object}`` of what the API page renders."""
    anchors = {}
    for line in API_PAGE.read_text().splitlines():
        if line.startswith("::: "):
            path = line[4:].strip()
            obj = _lookup(path)
            anchors[path] = obj
            if inspect.isclass(obj):
                for name, member in vars(obj).items():
                    if (not name.startswith("_") and callable(member)
                            and inspect.getdoc(member)):
                        anchors[f"{path}.{name}"] = member
    return anchors


def _anchor(candidates):
    anchors = rendered()
    for path in candidates:
        if path in anchors:
            return path
        obj = _lookup(path)
        if obj is not None and (inspect.isclass(obj) or inspect.isroutine(obj)):
            for anchor, target in anchors.items():
                if target is obj:
                    return anchor
    return None


def _candidates(target, module, cls):
    if target.startswith("."):  # relative to the module's package
        package = module.rsplit(".", 1)[0] if not _is_package(module) else module
        return [package + target]
    found = [target]
    if cls:
        found.append(f"{module}.{cls}.{target}")
    found += [f"{module}.{target}", f"skmixed.{target}"]
    return found


def _is_package(module):
    mod = _lookup(module)
    return hasattr(mod, "__path__")


def convert(text, module, cls=None):
    """``text`` with its reST roles as Markdown (see the module docstring)."""

    def replace(match):
        _, tilde, title, explicit = match.groups()
        target = (explicit or title).strip().lstrip("~")
        shown = title.strip() if explicit else (target.rsplit(".", 1)[-1] if tilde
                                                else target.lstrip("."))
        anchor = _anchor(_candidates(target, module, cls))
        return f"[`{shown}`][{anchor}]" if anchor else f"`{shown}`"

    return ROLE.sub(replace, text)


def convert_source(source, module):
    """A module's source with the roles of every line converted, class-relative names
    resolved against the class the line is in."""
    lines = source.splitlines(keepends=True)
    owner = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            for i in range(node.lineno - 1, node.end_lineno):
                owner[i] = node.name  # breadth first: an inner class overrides its outer
    return "".join(convert(line, module, owner.get(i)) for i, line in enumerate(lines))


class RestRoles(griffe.Extension):
    """The griffe extension: `convert` on the docstrings of ``MODULES``."""

    def on_instance(self, *, obj, **kwargs):
        module = obj.module.path
        if obj.docstring is None or not any(module == m or module.startswith(m + ".")
                                            for m in MODULES):
            return
        cls = obj.parent.name if obj.parent is not None and obj.parent.is_class else (
            obj.name if obj.is_class else None)
        obj.docstring.value = convert(obj.docstring.value, module, cls)
