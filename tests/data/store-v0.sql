-- A store written by the release before schema versions (commit 970ec42, user_version 0), dumped with
-- sqlite3's iterdump by tests/data/make_store_v0.py; @BATCHAI_HOME@ stands for the home it was made in.
-- Jobs: done (succeeded), failed (failed, experiment exp), and on the 0-node cluster `later` three queued
-- ones: waiting-secret (a secret and an environment variable), waiting-low (experiment exp), waiting-high.
BEGIN TRANSACTION;
CREATE TABLE clusters (
    workspace TEXT NOT NULL, name TEXT NOT NULL, uuid TEXT NOT NULL, spec TEXT NOT NULL,
    secrets TEXT NOT NULL DEFAULT '{}', target INTEGER NOT NULL, created REAL NOT NULL,
    deleting INTEGER NOT NULL DEFAULT 0, errors TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (workspace, name));
INSERT INTO "clusters" VALUES('default','cpu','6e70a5c85b7342e7a50ab5dce74598ce','{"name": "cpu", "workspace": "default", "backend": "local", "vm_size": "local", "vm_priority": "dedicated", "cpus_per_node": 1, "gpus_per_node": 0, "memory_mb_per_node": 0, "scale": {"mode": "manual", "target": 0, "minimum": 0, "maximum": 0, "initial": 0, "node_deallocation_option": "requeue", "idle_seconds_before_scaledown": 300.0}, "setup_task": null, "mount_volumes": null, "native_mounts": false, "backend_options": {}, "api_version": "native"}','{}',0,1.79616389350035476684e+09,0,'[]');
INSERT INTO "clusters" VALUES('default','later','5094a7b274b44307850ef15188e7ac57','{"name": "later", "workspace": "default", "backend": "local", "vm_size": "local", "vm_priority": "dedicated", "cpus_per_node": 1, "gpus_per_node": 0, "memory_mb_per_node": 0, "scale": {"mode": "manual", "target": 0, "minimum": 0, "maximum": 0, "initial": 0, "node_deallocation_option": "requeue", "idle_seconds_before_scaledown": 300.0}, "setup_task": null, "mount_volumes": null, "native_mounts": false, "backend_options": {}, "api_version": "native"}','{}',0,1.79616389350201106078e+09,0,'[]');
CREATE TABLE datastores (
    workspace TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, config TEXT NOT NULL,
    secrets TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL,
    PRIMARY KEY (workspace, name));
INSERT INTO "datastores" VALUES('default','default','local','{"path": "@BATCHAI_HOME@/datastores/default/default"}','{}',1.79616389349286246297e+09);
CREATE TABLE experiments (
    workspace TEXT NOT NULL, name TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (workspace, name));
INSERT INTO "experiments" VALUES('default','default',1.79616389349286246297e+09);
INSERT INTO "experiments" VALUES('default','exp',1.79616389349995875354e+09);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, workspace TEXT NOT NULL, experiment TEXT NOT NULL,
    name TEXT NOT NULL, uuid TEXT NOT NULL, cluster TEXT NOT NULL, priority INTEGER NOT NULL,
    state TEXT NOT NULL, phase TEXT NOT NULL DEFAULT '', spec TEXT NOT NULL,
    secrets TEXT NOT NULL DEFAULT '{}', attempt INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL, state_since REAL NOT NULL, started REAL, ended REAL,
    exit_code INTEGER, errors TEXT NOT NULL DEFAULT '[]', node_ids TEXT NOT NULL DEFAULT '[]',
    master_port INTEGER, retries_used INTEGER NOT NULL DEFAULT 0,
    UNIQUE (workspace, experiment, name));
INSERT INTO "jobs" VALUES(1,'default','default','done','fd71aa31786c41e586fa4423ff1a5fbe','cpu',0,'succeeded','','{"name": "done", "cluster": "cpu", "toolkit": {"kind": "custom", "command_line": "echo done-output", "python_script": "", "python_interpreter": "", "args": "", "process_count": null, "communication_backend": "gloo", "master_args": "", "worker_args": "", "ps_args": "", "worker_count": null, "ps_count": null, "tf_config_chief": false, "language": "", "config_file": ""}, "workspace": "default", "experiment": "default", "node_count": 1, "priority": 0, "max_wall_clock_seconds": 604800.0, "max_retries": 0, "job_preparation": "", "input_directories": [], "output_directories": [], "environment": {}, "secrets": {}, "std_out_err_path_prefix": "", "mount_volumes": null, "api_version": "native"}','{}',1,1.79616389350225353236e+09,1796163893.53087,1.79616389350441932673e+09,1.79616389353086853023e+09,0,'[]','[1]',46687,0);
INSERT INTO "jobs" VALUES(2,'default','exp','failed','b1101b1b66d5442d98297a6086e607aa','cpu',0,'failed','','{"name": "failed", "cluster": "cpu", "toolkit": {"kind": "custom", "command_line": "echo failing; exit 3", "python_script": "", "python_interpreter": "", "args": "", "process_count": null, "communication_backend": "gloo", "master_args": "", "worker_args": "", "ps_args": "", "worker_count": null, "ps_count": null, "tf_config_chief": false, "language": "", "config_file": ""}, "workspace": "default", "experiment": "exp", "node_count": 1, "priority": 0, "max_wall_clock_seconds": 604800.0, "max_retries": 0, "job_preparation": "", "input_directories": [], "output_directories": [], "environment": {}, "secrets": {}, "std_out_err_path_prefix": "", "mount_volumes": null, "api_version": "native"}','{}',1,1.79616389360555219652e+09,1.79616389366113138196e+09,1.79616389360730433462e+09,1.79616389366112947463e+09,3,'[{"code": "JobFailed", "message": "task master on node tvm-1 exited with code 3; see stdout.txt and stderr.txt"}]','[1]',54569,0);
INSERT INTO "jobs" VALUES(3,'default','default','waiting-secret','7773b532b5bc476a97927ca7bbd73235','later',0,'queued','','{"name": "waiting-secret", "cluster": "later", "toolkit": {"kind": "custom", "command_line": "test \"$API_KEY\" = s3cr3t-v0 && echo \"$GREETING secret-ok\"", "python_script": "", "python_interpreter": "", "args": "", "process_count": null, "communication_backend": "gloo", "master_args": "", "worker_args": "", "ps_args": "", "worker_count": null, "ps_count": null, "tf_config_chief": false, "language": "", "config_file": ""}, "workspace": "default", "experiment": "default", "node_count": 1, "priority": 0, "max_wall_clock_seconds": 604800.0, "max_retries": 0, "job_preparation": "", "input_directories": [], "output_directories": [], "environment": {"GREETING": "hello"}, "secrets": {}, "std_out_err_path_prefix": "", "mount_volumes": null, "api_version": "native"}','{"API_KEY": "s3cr3t-v0"}',1,1.7961638938089251518e+09,1.7961638938089251518e+09,NULL,NULL,NULL,'[]','[]',NULL,0);
INSERT INTO "jobs" VALUES(4,'default','exp','waiting-low','fa7de091862247248b2a872c01d07883','later',0,'queued','','{"name": "waiting-low", "cluster": "later", "toolkit": {"kind": "custom", "command_line": "echo low-output", "python_script": "", "python_interpreter": "", "args": "", "process_count": null, "communication_backend": "gloo", "master_args": "", "worker_args": "", "ps_args": "", "worker_count": null, "ps_count": null, "tf_config_chief": false, "language": "", "config_file": ""}, "workspace": "default", "experiment": "exp", "node_count": 1, "priority": 0, "max_wall_clock_seconds": 604800.0, "max_retries": 0, "job_preparation": "", "input_directories": [], "output_directories": [], "environment": {}, "secrets": {}, "std_out_err_path_prefix": "", "mount_volumes": null, "api_version": "native"}','{}',1,1.79616389380960845946e+09,1.79616389380960845946e+09,NULL,NULL,NULL,'[]','[]',NULL,0);
INSERT INTO "jobs" VALUES(5,'default','default','waiting-high','7d352a558bd74b2da23d3f41699f6727','later',100,'queued','','{"name": "waiting-high", "cluster": "later", "toolkit": {"kind": "custom", "command_line": "echo high-output", "python_script": "", "python_interpreter": "", "args": "", "process_count": null, "communication_backend": "gloo", "master_args": "", "worker_args": "", "ps_args": "", "worker_count": null, "ps_count": null, "tf_config_chief": false, "language": "", "config_file": ""}, "workspace": "default", "experiment": "default", "node_count": 1, "priority": 100, "max_wall_clock_seconds": 604800.0, "max_retries": 0, "job_preparation": "", "input_directories": [], "output_directories": [], "environment": {}, "secrets": {}, "std_out_err_path_prefix": "", "mount_volumes": null, "api_version": "native"}','{}',1,1.79616389380991864203e+09,1.79616389380991864203e+09,NULL,NULL,NULL,'[]','[]',NULL,0);
CREATE TABLE nodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, workspace TEXT NOT NULL, cluster TEXT NOT NULL,
    name TEXT NOT NULL, state TEXT NOT NULL, ip TEXT NOT NULL, job_id INTEGER,
    state_since REAL NOT NULL, errors TEXT NOT NULL DEFAULT '[]', info TEXT NOT NULL DEFAULT '{}');
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL, attempt INTEGER NOT NULL,
    phase TEXT NOT NULL, name TEXT NOT NULL, node_id INTEGER NOT NULL, role TEXT NOT NULL,
    rank INTEGER NOT NULL, required INTEGER NOT NULL, run_dir TEXT NOT NULL,
    stdout TEXT NOT NULL, stderr TEXT NOT NULL, state TEXT NOT NULL, exit_code INTEGER,
    launched REAL NOT NULL, ended REAL);
INSERT INTO "tasks" VALUES(1,1,1,'main','master',1,'master',0,1,'@BATCHAI_HOME@/nodes/default/cpu/tvm-1/run/fd71aa31786c41e586fa4423ff1a5fbe-1-master','stdout.txt','stderr.txt','exited',0,1.7961638935063371658e+09,1.79616389353057456018e+09);
INSERT INTO "tasks" VALUES(2,2,1,'main','master',1,'master',0,1,'@BATCHAI_HOME@/nodes/default/cpu/tvm-1/run/b1101b1b66d5442d98297a6086e607aa-1-master','stdout.txt','stderr.txt','exited',3,1.79616389361228179924e+09,1.79616389366081547732e+09);
CREATE TABLE workspaces (
    name TEXT PRIMARY KEY, created REAL NOT NULL);
INSERT INTO "workspaces" VALUES('default',1.79616389349286246297e+09);
CREATE INDEX nodes_by_cluster ON nodes (workspace, cluster);
CREATE INDEX jobs_by_state ON jobs (state);
CREATE INDEX tasks_by_job ON tasks (job_id, attempt);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('nodes',1);
INSERT INTO "sqlite_sequence" VALUES('jobs',5);
INSERT INTO "sqlite_sequence" VALUES('tasks',2);
COMMIT;
