rule train_teacher:
    input:
        config=ancient(results("config.yaml")),
        manifest=results("data", "manifest.json"),
    output:
        model=run_file("models", "teacher"),
        curve=run_file("train", "teacher"),
    log:
        results("logs", "train_teacher.log"),
    benchmark:
        results("benchmarks", "train_teacher.tsv")
    # the critical path: every distilled student waits for the teacher, so it starts first
    priority: res.train_priority(config, "teacher")
    conda:
        ETC_ENV
    threads: res.threads(config, "train")
    resources:
        mem_mb=res.train_mem_mb(config, "teacher"),
        gpu=res.train_gpus(config, "teacher"),
        nvidia_gpu=res.train_gpus(config, "teacher"),
    params:
        digest=reads("train-teacher"),
        launcher=train_launcher("teacher"),
    shell:
        "{params.launcher} train --config {input.config:q} --run teacher --out {output.model:q} "
        "--log-csv {output.curve:q} > {log:q} 2>&1"


rule train_student:
    input:
        unpack(student_inputs),
    output:
        model=run_file("models", "{student}/{ablation}"),
        curve=run_file("train", "{student}/{ablation}"),
    log:
        results("logs", "train_student_{student}_{ablation}.log"),
    benchmark:
        results("benchmarks", "train_student_{student}_{ablation}.tsv")
    # the longest student first, once the teacher has started
    priority: lambda wildcards: res.train_priority(config, "student", wildcards.ablation)
    conda:
        ETC_ENV
    threads: res.threads(config, "train")
    resources:
        # the frames and the teacher the ablation runs: a baseline asks for less than tl_kd
        mem_mb=lambda wildcards: res.train_mem_mb(
            config, "student", wildcards.ablation, wildcards.student
        ),
        gpu=res.train_gpus(config, "student"),
        nvidia_gpu=res.train_gpus(config, "student"),
    params:
        flags=student_flags,
        digest=reads("train-student"),
        launcher=train_launcher("student"),
    shell:
        "{params.launcher} train --config {input.config:q} --run {wildcards.student}/{wildcards.ablation} "
        "--out {output.model:q} --log-csv {output.curve:q} {params.flags} > {log:q} 2>&1"
