"""The fsedpc per-chiplet instruction set, FSA v3: records, `.bin` and `.fsa` forms, and the
shared stream-table file of static programs (`streams.bin`).

docs/isa.md is the reference (its opcode section is generated from `opcodes.OPS` and a test keeps
it in step). This package is the format only: what the instructions mean is executed by the
machine in `fsedp_compiler.sim`, and written by the compiler's `emit-isa` pass.
"""

from fsedp_compiler.isa import opcodes as _opcodes
from fsedp_compiler.isa.binary import HEADER_SIZE, BinWriter, decode, encode, header_size, sha256_hex
from fsedp_compiler.isa.opcodes import *  # noqa: F403
from fsedp_compiler.isa.opcodes import OPCODE, OPS, Field, OpInfo, instr, record
from fsedp_compiler.isa.ports import neighbours, port_maps
from fsedp_compiler.isa.program import MAX_PORTS, Program, find_problem
from fsedp_compiler.isa.tables import TABLES_FILE, TABLES_MAGIC, StreamTables, decode_tables, encode_tables, tables_text
from fsedp_compiler.isa.text import format_record, parse_text, parse_text_lines, stream_members, to_text

__all__ = [
    "BinWriter", "HEADER_SIZE", "MAX_PORTS", "OPCODE", "OPS", "Field", "OpInfo", "Program", "decode", "encode",
    "find_problem", "format_record", "header_size", "instr", "neighbours", "parse_text", "parse_text_lines",
    "port_maps", "record",
    "sha256_hex", "stream_members", "to_text", "TABLES_FILE", "TABLES_MAGIC", "StreamTables", "decode_tables",
    "encode_tables", "tables_text",
    *(name for name in vars(_opcodes) if name.isupper() and not name.startswith("_")),
]  # fmt: skip
