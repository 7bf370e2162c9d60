"""The host a timing was taken on: read from /proc/cpuinfo's first processor, so that two hosts of
the same name (both "AMD EPYC") are told apart by family/model and vector extensions."""

from __future__ import annotations

from finscribe.machine import describe_machine, machine_line

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model name\t: some other core
flags\t\t: fpu sse2
"""


def test_the_first_processor_names_the_host_and_its_vector_extensions(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    machine = describe_machine(path)
    assert machine["cpu"] == "AMD EPYC" and machine["cpu_family_model"] == "26/2"
    # only the extensions that decide matmul speed, in a fixed order (avx512bw is not one of them)
    assert machine["vector_extensions"] == ["avx2", "avx512f", "avx512_bf16", "avx512_vnni"]
    assert machine["cores"] >= 1 and machine["torch_threads"] >= 1 and machine["torch"] and machine["transformers"]
    line = machine_line(machine)
    assert line.startswith("AMD EPYC (family/model 26/2), ") and "avx512_bf16" in line and "torch " in line and "transformers " in line


def test_a_host_without_cpuinfo_still_gets_a_description(tmp_path):
    machine = describe_machine(tmp_path / "missing")
    assert machine["cpu"] and machine["cpu_family_model"] is None and machine["vector_extensions"] == []
    assert "no AVX2" in machine_line(machine)
