"""Paper-style tables as Markdown, CSV and LaTeX from one cell grid."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass


@dataclass
class Cell:
    value: float | None
    std: float | None = None
    bold: bool = False
    mark: str = ""  # e.g. "*" for a significant difference
    note: str = ""  # appended as is, e.g. " (+0.012)"

    def core(self, digits: int = 3) -> str:
        """The number (and its std) alone: what bold applies to."""
        if self.value is None:
            return "-"
        out = f"{self.value:.{digits}f}"
        if self.std is not None:
            out += f" ± {self.std:.{digits}f}"
        return out

    def text(self, digits: int = 3) -> str:
        return self.core(digits) if self.value is None else self.core(digits) + self.mark + self.note

    def markdown(self, digits: int = 3) -> str:
        """Bold around the number only, the mark escaped: ``**0.395 ± 0.028**\\*`` renders as
        intended where ``**0.395 ± 0.028***`` does not."""
        if self.value is None:
            return "-"
        core = f"**{self.core(digits)}**" if self.bold else self.core(digits)
        return core + self.mark.replace("*", "\\*") + self.note


@dataclass
class Table:
    """Rows of labelled cells under two header levels (e.g. benchmark, then cos / eucl)."""

    row_header: str
    groups: list[str]
    subcolumns: list[str]
    rows: list[tuple[str, list[Cell]]]  # one Cell per (group, subcolumn), group-major
    caption: str = ""

    def columns(self) -> list[str]:
        return [f"{g} {s}" for g in self.groups for s in self.subcolumns]

    def markdown(self, digits: int = 3) -> str:
        head = [self.row_header, *self.columns()]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for label, cells in self.rows:
            texts = [c.markdown(digits) for c in cells]
            lines.append("| " + " | ".join([label, *texts]) + " |")
        if self.caption:
            lines += ["", self.caption]
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([self.row_header, *self.columns()])
        for label, cells in self.rows:
            writer.writerow([label, *["" if c.value is None else f"{c.value:.6f}" for c in cells]])
        return buffer.getvalue()

    def latex(self, digits: int = 3) -> str:
        """A ``tabular`` fragment with a two-level header (needs only the booktabs package)."""
        n_sub = len(self.subcolumns)
        spec = "l" + "c" * (len(self.groups) * n_sub)
        lines = [f"\\begin{{tabular}}{{{spec}}}", "\\toprule"]
        lines.append(" & ".join([""] + [f"\\multicolumn{{{n_sub}}}{{c}}{{{_tex(g)}}}" for g in self.groups]) + " \\\\")
        lines.append(
            " & ".join([_tex(self.row_header)] + [_tex(s) for _ in self.groups for s in self.subcolumns]) + " \\\\"
        )
        lines.append("\\midrule")
        for label, cells in self.rows:
            texts = [_tex(c.text(digits)).replace("±", "$\\pm$") for c in cells]
            texts = [f"\\textbf{{{t}}}" if c.bold else t for t, c in zip(texts, cells)]
            lines.append(" & ".join([_tex(label), *texts]) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    for char, escaped in (("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"), ("_", "\\_"), ("#", "\\#")):
        text = text.replace(char, escaped)
    return text.replace("*", "$^{*}$")
