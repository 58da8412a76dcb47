"""Read the port list of a generated top with pyverilog, for checking it against the contract.

Only the top module's text is parsed (the file holds the whole hierarchy), with Yosys attributes stripped
because pyverilog's grammar does not accept them.
"""

import re

__all__ = ["top_module_text", "parse_ports"]


def top_module_text(verilog: str, top: str) -> str:
    start = verilog.index(f"module {top}(")
    end = verilog.index("endmodule", start) + len("endmodule")
    return re.sub(r"\(\*.*?\*\)", "", verilog[start:end], flags=re.S) + "\n"


def parse_ports(verilog: str, top: str, *, table_dir: str | None = None) -> list[dict]:
    """[{name, direction, width}] of module `top`, in declaration order.

    table_dir: where pyverilog may write its parser tables (default: a temporary directory).
    """
    import tempfile

    from pyverilog.vparser import ast as vast
    from pyverilog.vparser.parser import VerilogParser

    with tempfile.TemporaryDirectory() as tmp:
        tree = VerilogParser(outputdir=table_dir or tmp, debug=False).parse(top_module_text(verilog, top))
    ports = []

    def width(node):
        if node.width is None:
            return 1
        return int(node.width.msb.value) - int(node.width.lsb.value) + 1

    def walk(node):
        if isinstance(node, (vast.Input, vast.Output, vast.Inout)):
            kind = {vast.Input: "input", vast.Output: "output", vast.Inout: "inout"}[type(node)]
            ports.append({"name": node.name, "direction": kind, "width": width(node)})
            return
        for child in node.children():
            walk(child)

    walk(tree)
    return ports
