rule train_teacher:
    input:
        config=ancient(results("config.yaml")),
        manifest=results("data", "manifest.json"),
    output:
        model=results("models", "teacher.pt"),
        curve=results("train", "teacher.csv"),
    params:
        digest=digest("dataset", "augment", "teacher"),
        schedule=lambda wildcards: json.dumps(config["train"]["teacher"], sort_keys=True),
        launcher=train_launcher("teacher"),
    log:
        results("logs", "train_teacher.log"),
    benchmark:
        results("benchmarks", "train_teacher.tsv")
    resources:
        gpu=train_gpus("teacher"),
        nvidia_gpu=train_gpus("teacher"),
    shell:
        "{params.launcher} train --config {input.config:q} --run teacher --out {output.model:q} "
        "--log-csv {output.curve:q} > {log:q} 2>&1"


rule train_student:
    input:
        unpack(student_inputs),
    output:
        model=results("models", "{student}", "{ablation}.pt"),
        curve=results("train", "{student}", "{ablation}.csv"),
    params:
        flags=student_flags,
        digest=digest("dataset", "augment", "students", "losses", "flow"),
        recipe=lambda wildcards: json.dumps(config["ablations"][wildcards.ablation], sort_keys=True),
        schedule=lambda wildcards: json.dumps(config["train"]["student"], sort_keys=True),
        launcher=train_launcher("student"),
    log:
        results("logs", "train_student_{student}_{ablation}.log"),
    benchmark:
        results("benchmarks", "train_student_{student}_{ablation}.tsv")
    resources:
        gpu=train_gpus("student"),
        nvidia_gpu=train_gpus("student"),
    shell:
        "{params.launcher} train --config {input.config:q} --run {wildcards.student}/{wildcards.ablation} "
        "--out {output.model:q} --log-csv {output.curve:q} {params.flags} > {log:q} 2>&1"
