//! The page's components, one a file.

pub mod audit_chart;
pub mod axes;
pub mod cert_notice;
pub mod chart;
pub mod experiment_form;
pub mod flame_diff;
pub mod flame_graph;
pub mod live_counts;
pub mod server_status;
pub mod snapshot_diff;
pub mod snapshot_panel;
pub mod snapshot_tree;

pub use audit_chart::AuditChart;
pub use axes::Axes;
pub use cert_notice::CertNotice;
pub use chart::Chart;
pub use experiment_form::ExperimentForm;
pub use flame_diff::FlameDiff;
pub use flame_graph::FlameGraph;
pub use live_counts::LiveCounts;
pub use server_status::ServerStatus;
pub use snapshot_diff::SnapshotDiff;
pub use snapshot_panel::SnapshotPanel;
pub use snapshot_tree::SnapshotTree;
