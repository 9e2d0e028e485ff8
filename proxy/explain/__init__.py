"""`careers-edge explain`: one request through the rules file, as a dry run.

No network and no state: the rules are compiled exactly as `run` compiles them
(`compile_runtime`, with a throw-away cookie key), and the same stages the request
path calls (attribution, candidates/classify, pixels, routing, the sinks' request
builders) are called with the values given on the command line. The response is
assumed to be `200 text/html` unless `--status` says otherwise, or JSON when `--json`
gives its body (`json_exprs` shows what each JSON expression yields). Values that
differ per visitor are shown as placeholders (`<new>` for a minted visitor id, `<tlr_sid>`
for a click id the visitor lacks). Secrets are masked; anything the user typed is
escaped before it reaches the terminal.

`report` walks the stages; `request`, `pixels`, `rules` and `sinks` say what each
does with the request, `text` how it is written.
"""

from proxy.explain.report import explain

__all__ = ["explain"]
