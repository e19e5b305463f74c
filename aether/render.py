"""Render Jinja templates strictly: an undefined name is an error, not "".

``render(name, **context)`` returns text. A template that refers to a name
the context lacks fails with the template file, its line and the name, so a
mistake in hosts.yml or a template never reaches a server half-rendered.
"""
import json
import re
from pathlib import Path

import jinja2

from .errors import AetherError

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)
_environment.filters["json"] = lambda value: json.dumps(value, sort_keys=True, ensure_ascii=True)
# A quoted YAML string for a compose file; "$" is doubled because Compose
# would otherwise substitute server variables into the value.
_environment.filters["yaml_string"] = lambda value: json.dumps(str(value).replace("$", "$$"))


def _template_line(error, name):
    for frame_line in reversed(re.findall(r'File "([^"]+)", line (\d+)', _traceback(error))):
        if frame_line[0].endswith(name):
            return frame_line[1]
    return getattr(error, "lineno", None) or "?"


def _traceback(error):
    import traceback
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def render(name, **context):
    """Render ``templates/NAME`` with ``context``; fail loudly and precisely.

    ``source`` (the inventory's path) is reduced to its file name, so the
    same inventory read from another folder renders identical files.
    """
    if "source" in context:
        context["source"] = Path(str(context["source"])).name
    try:
        return _environment.get_template(name).render(**context)
    except jinja2.UndefinedError as error:
        line = _template_line(error, name)
        raise AetherError(f"templates/{name}:{line}: {error.message}; "
                          "add the key to hosts.yml or fix the template") from None
    except jinja2.TemplateSyntaxError as error:
        raise AetherError(f"templates/{name}:{error.lineno}: {error.message}") from None
    except jinja2.TemplateNotFound:
        raise AetherError(f"templates/{name}: no such template") from None
