"""The fsedpc per-chiplet instruction set, FSA v3: records, `.bin` and `.fsa` forms, and the
shared stream-table file of static programs (`streams.bin`).

docs/isa.md is the reference (its opcode section is generated from `opcodes.OPS` and a test keeps
it in step). This package is the format only: what the instructions mean is executed by the
machine in `fsedp_compiler.sim`, and written by the compiler's `emit-isa` pass.
"""

from . import opcodes as _opcodes
from .binary import HEADER_SIZE, decode, encode, header_size, sha256_hex
from .opcodes import *  # noqa: F403
from .opcodes import OPCODE, OPS, Field, OpInfo, instr, record
from .ports import neighbours, port_maps
from .program import MAX_PORTS, Program, find_problem
from .tables import TABLES_FILE, TABLES_MAGIC, StreamTables, decode_tables, encode_tables, tables_text
from .text import format_record, parse_text, parse_text_lines, stream_members, to_text

__all__ = [
    "HEADER_SIZE", "MAX_PORTS", "OPCODE", "OPS", "Field", "OpInfo", "Program", "decode", "encode",
    "find_problem", "format_record", "header_size", "instr", "neighbours", "parse_text", "parse_text_lines",
    "port_maps", "record",
    "sha256_hex", "stream_members", "to_text", "TABLES_FILE", "TABLES_MAGIC", "StreamTables", "decode_tables",
    "encode_tables", "tables_text",
    *(name for name in vars(_opcodes) if name.isupper() and not name.startswith("_")),
]  # fmt: skip
