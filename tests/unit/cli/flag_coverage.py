"""Which test proves that each flag of the ``shadowlane`` CLI does what its ``--help`` says.

``FLAGS`` maps every ``(command, flag)`` of the parser (the root's command is ``""``; a positional
is named by its ``dest``) to ``"path::test_name"``. test_flag_coverage.py holds the map to the
parser: every flag has an entry, every entry names a test that exists and whose source (decorators
included) mentions the flag. A flag added without a test, or a test renamed, fails there.
"""

from __future__ import annotations

CLI = "tests/unit/cli"
CMDS = "tests/integration/test_cli_commands.py"
DEMO = "tests/integration/test_cli_demo.py"

_KAFKA = f"{CLI}/test_kafka_cmd.py"
_WORKERS = f"{CLI}/test_worker_cmds.py"
_PINS = f"{CLI}/test_shadow_pins.py"
_DEMO = f"{CLI}/test_demo_cmd.py"
_REPORT = f"{CLI}/test_report_cmd.py"
_RESCORE = f"{CLI}/test_rescore_cmd.py"
_ROLLOUT = f"{CLI}/test_rollout_cmd.py"
_GATE = f"{CLI}/test_gate_cmd.py"
_SIMULATE = f"{CLI}/test_simulate_cmd.py"
_CONTROL = f"{CMDS}::test_control_commands_record_who_why_and_what_they_changed"

FLAGS: dict[tuple[str, str], str] = {
    # the root
    ("", "--version"): f"{CLI}/test_main.py::test_version_prints_the_installed_version",
    ("", "--verbose"): f"{CLI}/test_main.py::test_verbose_turns_on_debug_logging",
    ("", "--debug"): f"{CLI}/test_failures.py::test_debug_shows_the_traceback",
    (
        "",
        "--config",
    ): f"{CLI}/test_config_option.py::test_the_config_file_reaches_the_command_under_the_environment",
    # kafka
    ("kafka start", "--secure"): f"{_KAFKA}::test_start_secure_works_in_the_secured_brokers_folder",
    ("kafka start", "--brokers"): f"{_KAFKA}::test_start_brokers_starts_a_cluster_not_the_single_broker",
    (
        "kafka start",
        "--timeout",
    ): f"{_KAFKA}::test_start_timeout_bounds_the_wait_for_a_broker_that_does_not_answer",
    ("kafka stop", "--secure"): f"{_KAFKA}::test_stop_secure_and_stop_brokers_leave_the_single_broker_alone",
    ("kafka stop", "--brokers"): f"{_KAFKA}::test_stop_secure_and_stop_brokers_leave_the_single_broker_alone",
    ("kafka stop", "--timeout"): f"{_KAFKA}::test_stop_timeout_is_the_grace_before_sigkill",
    ("kafka status", "--secure"): f"{_KAFKA}::test_status_secure_reports_the_secured_broker",
    ("kafka status", "--brokers"): "tests/unit/kafka/test_cluster.py::test_status_of_a_cluster_never_started",
    ("kafka env", "--secure"): f"{_KAFKA}::test_env_needs_the_secured_broker_running",
    ("kafka env", "--principal"): f"{_KAFKA}::test_env_prints_the_settings_of_the_principal_asked_for",
    ("kafka acls", "--secure"): "tests/integration/test_secure_broker.py::"
    "test_every_component_runs_under_its_own_principal_and_no_further",
    ("kafka acls", "--apply"): "tests/integration/test_secure_broker.py::"
    "test_every_component_runs_under_its_own_principal_and_no_further",
    ("kafka acls", "--principal"): "tests/unit/kafka/test_acls.py::"
    "test_the_command_prints_the_policy_and_refuses_unknown_components",
    # the workers
    ("shadow", "--candidate"): f"{_WORKERS}::test_shadow_flags_shape_the_worker",
    ("shadow", "--flag"): f"{_WORKERS}::test_flag_names_the_kill_switch_the_worker_obeys",
    ("shadow", "--url"): f"{_WORKERS}::test_url_model_and_timeout_reach_the_candidate",
    ("shadow", "--callable"): f"{_WORKERS}::test_callable_names_the_python_function_called",
    ("shadow", "--model"): f"{_WORKERS}::test_url_model_and_timeout_reach_the_candidate",
    ("shadow", "--rate-cap"): f"{_WORKERS}::test_shadow_flags_shape_the_worker",
    ("shadow", "--concurrency"): f"{_WORKERS}::test_shadow_flags_shape_the_worker",
    ("shadow", "--timeout"): f"{_WORKERS}::test_url_model_and_timeout_reach_the_candidate",
    ("shadow", "--readonly-tool"): f"{_WORKERS}::test_shadow_flags_shape_the_worker",
    ("shadow", "--tool-stub"): f"{_WORKERS}::test_shadow_refuses_malformed_tool_stubs_and_pins",
    ("shadow", "--pin"): f"{_WORKERS}::test_shadow_flags_shape_the_worker",
    ("shadow", "--manifest"): f"{_PINS}::test_manifest_versions_are_the_expected_pins",
    ("shadow", "--served-model-pin"): f"{_PINS}::test_served_pin_flags_reach_the_candidate",
    ("shadow", "--served-pin-header"): f"{_PINS}::test_served_pin_flags_reach_the_candidate",
    ("shadow", "--metrics-port"): f"{_WORKERS}::test_metrics_port_and_host_choose_where_the_endpoints_listen",
    ("shadow", "--metrics-host"): f"{_WORKERS}::test_metrics_port_and_host_choose_where_the_endpoints_listen",
    ("compare", "--candidates"): f"{_WORKERS}::test_compare_flags_shape_the_comparator",
    ("compare", "--window"): f"{_WORKERS}::test_compare_flags_shape_the_comparator",
    ("compare", "--embedder"): f"{_WORKERS}::test_compare_flags_shape_the_comparator",
    ("compare", "--native-path"): "tests/unit/compare/native/test_path.py::"
    "test_compare_cli_refuses_a_forced_path_that_is_missing",
    (
        "compare",
        "--metrics-port",
    ): f"{_WORKERS}::test_metrics_port_and_host_choose_where_the_endpoints_listen",
    (
        "compare",
        "--metrics-host",
    ): f"{_WORKERS}::test_metrics_port_and_host_choose_where_the_endpoints_listen",
    # demo
    ("demo", "--requests"): f"{DEMO}::test_demo_compares_every_published_request",
    ("demo", "--ab-requests"): f"{DEMO}::test_demo_compares_every_published_request",
    ("demo", "--concurrency"): f"{_DEMO}::test_concurrency_caps_the_requests_in_flight",
    (
        "demo",
        "--candidate-error-rate",
    ): f"{_DEMO}::test_candidate_error_rate_is_the_share_of_model_b_calls_that_fail",
    ("demo", "--lambda-ratio"): f"{DEMO}::test_demo_compares_every_published_request",
    ("demo", "--rate-cap"): f"{_DEMO}::test_every_flag_sets_its_option_and_none_changes_the_defaults",
    ("demo", "--timeout"): f"{DEMO}::test_demo_timeout_ends_it_with_one_line_naming_the_logs",
    ("demo", "--json"): f"{DEMO}::test_demo_compares_every_published_request",
    # tail, lag, watch
    ("tail", "topic"): f"{DEMO}::test_tail_prints_records_as_json_lines",
    ("tail", "--from-beginning"): f"{DEMO}::test_tail_prints_records_as_json_lines",
    ("tail", "--max"): f"{DEMO}::test_tail_prints_records_as_json_lines",
    ("tail", "--idle-exit"): f"{DEMO}::test_tail_prints_records_as_json_lines",
    (
        "lag",
        "--group",
    ): "tests/integration/test_lag_cmd.py::test_lag_is_read_from_the_broker_with_no_member_running",
    (
        "lag",
        "--json",
    ): "tests/integration/test_lag_cmd.py::test_lag_is_read_from_the_broker_with_no_member_running",
    (
        "lag",
        "--serve",
    ): "tests/integration/test_lag_cmd.py::test_the_exporter_serves_the_lag_as_gauges_and_is_ready",
    ("lag", "--host"): f"{CMDS}::test_lag_exporter_binds_host_and_refreshes_every_interval",
    ("lag", "--interval"): f"{CMDS}::test_lag_exporter_binds_host_and_refreshes_every_interval",
    ("watch", "--group"): f"{CMDS}::test_watch_summarises_each_interval_and_resumes_its_group",
    ("watch", "--every"): f"{CMDS}::test_watch_summarises_each_interval_and_resumes_its_group",
    ("watch", "--duration"): f"{CMDS}::test_watch_summarises_each_interval_and_resumes_its_group",
    # rescore, report
    ("rescore", "--from"): f"{CMDS}::test_rescore_reads_its_range_writes_out_and_verifies",
    ("rescore", "--to"): f"{_RESCORE}::test_to_before_from_is_a_usage_error",
    ("rescore", "--candidates"): f"{_RESCORE}::test_candidates_and_embedder_override_the_comparators_config",
    ("rescore", "--embedder"): f"{_RESCORE}::test_candidates_and_embedder_override_the_comparators_config",
    ("rescore", "--out"): f"{CMDS}::test_rescore_reads_its_range_writes_out_and_verifies",
    ("rescore", "--verify"): f"{CMDS}::test_rescore_reads_its_range_writes_out_and_verifies",
    ("rescore", "--json"): f"{CMDS}::test_rescore_reads_its_range_writes_out_and_verifies",
    ("report", "--from"): f"{_REPORT}::test_from_and_to_are_the_range",
    ("report", "--to"): f"{_REPORT}::test_from_and_to_are_the_range",
    ("report", "--out"): f"{_REPORT}::test_out_is_where_the_files_go_and_the_summary_says_so",
    ("report", "--candidate"): f"{_REPORT}::test_candidate_noise_floor_and_no_shadow_choose_the_shadow_side",
    (
        "report",
        "--noise-floor",
    ): f"{_REPORT}::test_candidate_noise_floor_and_no_shadow_choose_the_shadow_side",
    ("report", "--no-shadow"): f"{_REPORT}::test_candidate_noise_floor_and_no_shadow_choose_the_shadow_side",
    ("report", "--flag"): f"{_REPORT}::test_flag_route_config_and_ab_weight_set_the_ab_side",
    ("report", "--ab-weight"): f"{_REPORT}::test_flag_route_config_and_ab_weight_set_the_ab_side",
    ("report", "--route-config"): f"{_REPORT}::test_flag_route_config_and_ab_weight_set_the_ab_side",
    ("report", "--grader"): f"{_REPORT}::test_grader_and_no_answers",
    ("report", "--manifest"): f"{_REPORT}::test_manifest_names_the_gates_that_judge_the_range",
    ("report", "--allowed-regression"): f"{_REPORT}::test_allowed_regression_is_the_accuracy_drop_tolerated",
    ("report", "--latency-budget"): f"{_REPORT}::test_latency_budget_and_alpha_decide_a_latency_regression",
    ("report", "--min-samples"): f"{_REPORT}::test_min_samples_is_what_a_verdict_needs",
    ("report", "--alpha"): f"{_REPORT}::test_latency_budget_and_alpha_decide_a_latency_regression",
    ("report", "--no-answers"): f"{_REPORT}::test_grader_and_no_answers",
    ("report", "--json"): f"{CMDS}::test_report_json_is_one_object_and_the_files_are_written",
    # the control commands
    ("shadow-on", "prod"): _CONTROL,
    ("shadow-on", "shadow"): _CONTROL,
    ("shadow-on", "--ratio"): _CONTROL,
    ("shadow-on", "--endpoint"): _CONTROL,
    ("shadow-on", "--flag"): _CONTROL,
    ("shadow-on", "--who"): _CONTROL,
    ("shadow-on", "--why"): _CONTROL,
    ("shadow-off", "--prod"): _CONTROL,
    ("shadow-off", "--endpoint"): _CONTROL,
    ("shadow-off", "--flag"): _CONTROL,
    ("shadow-off", "--who"): _CONTROL,
    ("shadow-off", "--why"): _CONTROL,
    ("kill", "--flag"): _CONTROL,
    ("kill", "--release"): _CONTROL,
    ("kill", "--who"): _CONTROL,
    ("kill", "--why"): _CONTROL,
    # rollout, gate, simulate-gates
    ("rollout", "--manifest"): f"{_ROLLOUT}::test_manifest_and_flag_are_read_before_anything_else",
    ("rollout", "--flag"): f"{_ROLLOUT}::test_manifest_and_flag_are_read_before_anything_else",
    ("rollout", "--window-s"): f"{_ROLLOUT}::test_window_epoch_salt_and_who_reach_the_rollout",
    ("rollout", "--max-looks"): f"{_ROLLOUT}::test_max_looks_is_how_long_a_stage_may_hold",
    ("rollout", "--planned-samples"): f"{_ROLLOUT}::test_planned_samples_is_what_alpha_is_spent_over",
    ("rollout", "--look-rule"): f"{_ROLLOUT}::test_look_rule_chooses_the_sequence_or_alpha_spending",
    ("rollout", "--epoch"): f"{_ROLLOUT}::test_window_epoch_salt_and_who_reach_the_rollout",
    ("rollout", "--salt"): f"{_ROLLOUT}::test_window_epoch_salt_and_who_reach_the_rollout",
    ("rollout", "--who"): f"{_ROLLOUT}::test_window_epoch_salt_and_who_reach_the_rollout",
    ("rollout", "--json"): f"{_ROLLOUT}::test_json_is_one_object_and_the_summary_ends_with_the_outcome",
    ("gate", "--manifest"): f"{_GATE}::test_manifest_and_flag_are_checked_before_any_broker",
    ("gate", "--flag"): f"{_GATE}::test_manifest_and_flag_are_checked_before_any_broker",
    ("gate", "--candidate"): f"{_GATE}::test_candidate_chooses_whose_summaries_are_judged",
    ("gate", "--from"): f"{_GATE}::test_from_to_and_window_are_the_range_judged",
    ("gate", "--to"): f"{_GATE}::test_from_to_and_window_are_the_range_judged",
    ("gate", "--window"): f"{_GATE}::test_from_to_and_window_are_the_range_judged",
    (
        "gate",
        "--look-rule",
    ): f"{_GATE}::test_look_rule_alpha_planned_and_previous_samples_set_the_looks_level",
    ("gate", "--alpha"): f"{_GATE}::test_look_rule_alpha_planned_and_previous_samples_set_the_looks_level",
    (
        "gate",
        "--planned-samples",
    ): f"{_GATE}::test_look_rule_alpha_planned_and_previous_samples_set_the_looks_level",
    (
        "gate",
        "--previous-samples",
    ): f"{_GATE}::test_look_rule_alpha_planned_and_previous_samples_set_the_looks_level",
    ("gate", "--fail-rule"): f"{_GATE}::test_fail_rule_and_bonferroni_are_how_the_gates_judge",
    ("gate", "--multiplicity"): f"{_GATE}::test_fail_rule_and_bonferroni_are_how_the_gates_judge",
    ("gate", "--json"): f"{CMDS}::test_gate_audits_who_asked_unless_told_not_to",
    ("gate", "--no-audit"): f"{CMDS}::test_gate_audits_who_asked_unless_told_not_to",
    ("gate", "--who"): f"{_GATE}::test_no_audit_and_who_shape_the_audit_event",
    (
        "simulate-gates",
        "--experiments",
    ): f"{_SIMULATE}::test_experiments_requests_look_every_and_seed_shape_the_simulation",
    (
        "simulate-gates",
        "--requests",
    ): f"{_SIMULATE}::test_experiments_requests_look_every_and_seed_shape_the_simulation",
    (
        "simulate-gates",
        "--look-every",
    ): f"{_SIMULATE}::test_experiments_requests_look_every_and_seed_shape_the_simulation",
    (
        "simulate-gates",
        "--seed",
    ): f"{_SIMULATE}::test_experiments_requests_look_every_and_seed_shape_the_simulation",
    (
        "simulate-gates",
        "--compare",
    ): f"{_SIMULATE}::test_compare_adds_the_ablations_and_exact_changes_the_levels",
    (
        "simulate-gates",
        "--exact",
    ): f"{_SIMULATE}::test_compare_adds_the_ablations_and_exact_changes_the_levels",
    (
        "simulate-gates",
        "--json",
    ): f"{_SIMULATE}::test_progress_is_drawn_on_a_terminal_only_and_never_with_json",
}
