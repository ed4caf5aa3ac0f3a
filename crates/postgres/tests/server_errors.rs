//! Errors a new user meets when the URL names something the server does not have: a missing
//! role or database is `invalid_argument` with the server's message (no source line), and the
//! database error is kept as the source.

use std::error::Error as _;
use std::str::FromStr;

use tapesched_postgres::sqlx::postgres::PgConnectOptions;
use tapesched_postgres::{PgConfig, PgSchedulerDb};
use tapesched_scheduler::ErrorKind;

/// The local server's URL with another role or database.
fn url_with(role: Option<&str>, database: Option<&str>) -> String {
    let url = tapesched_testkit::postgres_url().expect("a PostgreSQL server");
    let o = PgConnectOptions::from_str(&url).expect("a usable URL");
    let role = role.map(String::from).unwrap_or_else(|| o.get_username().to_string());
    let database = database.map(String::from).or_else(|| o.get_database().map(String::from)).unwrap_or(role.clone());
    format!("postgres://{role}@{}:{}/{database}", o.get_host(), o.get_port())
}

async fn refused(url: String) -> tapesched_scheduler::Error {
    let schema = tapesched_testkit::unique_name("pgerr");
    match PgSchedulerDb::connect(PgConfig::new(url, schema)).await {
        Ok(_) => panic!("connected where the server should refuse"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_missing_role_or_database_is_named() {
    let role = tapesched_testkit::unique_name("norole");
    let e = refused(url_with(Some(&role), Some("postgres"))).await;
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
    assert!(e.message.contains(&role) && e.message.contains("does not exist"), "{e}");
    assert!(!e.message.contains(" at line "), "{e}");
    assert!(e.source().is_some_and(|s| s.downcast_ref::<tapesched_postgres::sqlx::Error>().is_some()), "{e:?}");

    let database = tapesched_testkit::unique_name("nodb");
    let e = refused(url_with(None, Some(&database))).await;
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
    assert!(e.message.contains(&database) && e.message.contains("does not exist"), "{e}");
    assert!(!e.message.contains(" at line "), "{e}");
}
