//! Scenario runner (being written).
