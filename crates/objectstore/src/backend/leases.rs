//! Leases (`SchedulerDb::try_lease`, `release_lease`): one `Lease-<name>` object per lease,
//! read and written under its own exclusive lock, so that of two instances asking at once one
//! sees the other's grant.

use tapesched_scheduler::clock::Timestamp;
use tapesched_scheduler::{Error, Result};

use super::ObjectstoreDb;
use crate::objects::{lease_name, Lease};

impl ObjectstoreDb {
    pub(super) async fn try_lease_op(
        &self,
        name: &str,
        holder: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        if holder.is_empty() {
            return Err(Error::invalid("a lease holder has a name"));
        }
        self.ready().await?;
        let object = lease_name(name);
        self.objs.ensure(&object, &Lease::default()).await?;
        let Some((lock, mut lease)) = self.objs.lock_read::<Lease>(&object).await? else {
            return Err(Error::conflict(format!("lease {name} removed while taken")));
        };
        let granted = lease.holder.is_empty() || lease.holder == holder || lease.until <= now;
        let written = if granted {
            lease.holder = holder.to_string();
            lease.until = until;
            self.objs.write(&object, &lease, &lock).await
        } else {
            Ok(())
        };
        self.objs.unlock(lock).await;
        written.map(|()| granted)
    }

    pub(super) async fn release_lease_op(&self, name: &str, holder: &str) -> Result<()> {
        self.ready().await?;
        let object = lease_name(name);
        let Some((lock, lease)) = self.objs.lock_read::<Lease>(&object).await? else { return Ok(()) };
        let written =
            if lease.holder == holder { self.objs.write(&object, &Lease::default(), &lock).await } else { Ok(()) };
        self.objs.unlock(lock).await;
        written
    }
}
