rule report:
    input:
        config=ancient(results("config.yaml")),
        metrics=expand(run_file("metrics", "{model}"), model=all_models()),
        curves=expand(run_file("train", "{model}"), model=all_models()),
        keyframe=keyframe_row_files(),
        latency=keyframe("latency.json"),
    output:
        table=report(results("table.csv"), caption="../report/table.rst", category="Results"),
        markdown=results("table.md"),
        figures=[
            report(path, caption=f"../report/{name}.rst", category=category)
            for path, (name, category) in zip(report_outputs(), REPORT_FIGURES.items())
        ],
    log:
        results("logs", "report.log"),
    benchmark:
        results("benchmarks", "report.tsv")
    conda:
        ETC_ENV
    threads: res.threads(config, "report")
    resources:
        mem_mb=res.report_mem_mb(config),
    params:
        digest=reads("report"),
        outdir=lambda wildcards, output: Path(output.figures[0]).parent,
        metrics=lambda wildcards, input: Path(input.metrics[0]).parent,
        curves=lambda wildcards, input: Path(input.curves[0]).parent,
        keyframe=lambda wildcards, input: Path(input.keyframe[0]).parent,  # the teacher's row, always first
    shell:
        "etc report --config {input.config:q} --metrics-dir {params.metrics:q} --curves-dir {params.curves:q} "
        "--table {output.table:q} --out-dir {params.outdir:q} --keyframe-dir {params.keyframe:q} "
        "--latency {input.latency:q} > {log:q} 2>&1"


rule demo_video:
    input:
        unpack(demo_inputs),
        config=ancient(results("config.yaml")),
        flow=eval_flow(),
    output:
        video=results("demo", "clip{index}.mp4"),
        gif=report(
            results("demo", "clip{index}.gif"), caption="../report/demo.rst", category="Demo"
        ),
    log:
        results("logs", "demo_video_{index}.log"),
    benchmark:
        results("benchmarks", "demo_video_{index}.tsv")
    wildcard_constraints:
        index=r"\d+",
    conda:
        ETC_ENV
    threads: res.threads(config, "report")
    resources:
        mem_mb=res.demo_mem_mb(config),
    params:
        digest=reads("demo-video"),
        models=demo_models_arg,
    shell:
        "etc demo-video --config {input.config:q} --clip-index {wildcards.index} --models {params.models} "
        "--flow {input.flow:q} --out {output.video:q} --gif {output.gif:q} > {log:q} 2>&1"


rule bench:
    input:
        config=ancient(results("config.yaml")),
    output:
        table=report(results("bench.csv"), caption="../report/bench.rst", category="Benchmarks"),
        markdown=results("bench.md"),
        # the rules' wall times; drawn from results/benchmarks, which the config rule already fills
        figure=report(
            results(f"{BENCH_FIGURE}.png"), caption="../report/bench.rst", category="Benchmarks"
        ),
    log:
        results("logs", "bench.log"),
    benchmark:
        results("benchmarks", "bench.tsv")
    conda:
        ETC_ENV
    threads: res.threads(config, "timed")
    resources:
        mem_mb=res.bench_mem_mb(config),
        timing=1,  # one timed job at a time (profiles/default provides timing=1)
    params:
        digest=reads("bench"),
        results=lambda wildcards, output: Path(output.table).parent,
    shell:
        "etc bench --config {input.config:q} --out {output.table:q} --results {params.results:q} > {log:q} 2>&1"
