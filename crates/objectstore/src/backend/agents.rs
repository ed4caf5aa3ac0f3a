//! Agents and their intent logs: registering this process's and each mount's agent, listing
//! objects in a log before moving them, heartbeats, and whether an agent is dead.

use super::*;

impl ObjectstoreDb {
    /// Adds to (`add`) or removes from this process's own agent log, registering the agent on
    /// first use (a process that only runs drive sessions never registers one).
    pub(super) async fn log_own(&self, names: &[String], add: bool, now: Timestamp) -> Result<()> {
        self.agent_ready.get_or_try_init(|| self.register_own(now)).await?;
        match self.log(&self.agent, names, add, now).await {
            Err(e) if e.kind == tapesched_scheduler::ErrorKind::NotFound => {
                // Collected while this process lived (idle past the agent timeout): what it
                // owned then went back to its queues; it registers again and goes on.
                if !add {
                    return Ok(());
                }
                tracing::warn!(agent = %self.agent, "this process's agent was collected; registering it again");
                self.register_own(now).await?;
                self.log(&self.agent, names, add, now).await
            }
            r => r,
        }
    }

    /// Registers this process's own agent (again, if a collector took it), heartbeat `now`.
    pub(super) async fn register_own(&self, now: Timestamp) -> Result<()> {
        let agent = Agent { description: self.config.process_label.clone(), heartbeat: now, ..Agent::default() };
        // The name is this process's own: an agent already there was created by an attempt
        // whose answer was lost.
        self.register_agent(&self.agent, agent, true).await
    }

    /// What this process's own log still lists: objects an earlier attempt was moving when it
    /// failed (empty before the first logged operation).
    pub(super) async fn in_flight(&self) -> Result<BTreeSet<String>> {
        if !self.agent_ready.initialized() {
            return Ok(BTreeSet::new());
        }
        Ok(self.objs.read::<Agent>(&self.agent).await?.map(|a| a.owned.into_iter().collect()).unwrap_or_default())
    }

    /// Creates an agent, then lists it in the register (`mine`: an existing one is this
    /// process's, left by an earlier attempt; otherwise it is a conflict).
    ///
    /// The object comes first: a collector that finds a listed agent without its object takes it
    /// for one half deregistered and unlists it. Listed first, a mount's agent could be unlisted
    /// (or, created just as the collector locked the name, removed) before its object was
    /// written, and the live mount's next step found that it "does not exist or has ended". An
    /// agent whose listing fails is removed again (it owns nothing yet).
    pub(super) async fn register_agent(&self, name: &str, agent: Agent, mine: bool) -> Result<()> {
        if mine {
            self.objs.ensure(name, &agent).await?;
        } else {
            self.objs.create(name, &agent).await?;
        }
        let listed = self.list_agent(name).await;
        if listed.is_err() && !mine {
            let _ = self.remove_agent_object(name).await;
        }
        listed
    }

    async fn list_agent(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.objs
            .update::<AgentRegister, _>(AGENT_REGISTER, |reg| {
                if !reg.agents.contains(&name) {
                    reg.agents.push(name.clone());
                }
                Ok(((), Write::Commit))
            })
            .await?;
        Ok(())
    }

    async fn remove_agent_object(&self, name: &str) -> Result<()> {
        if let Some(lock) = self.objs.lock(name).await? {
            let r = self.objs.remove(name, &lock).await;
            self.objs.unlock(lock).await;
            r?;
        }
        Ok(())
    }

    /// Removes an agent's object, then its name from the register.
    pub(super) async fn deregister_agent(&self, name: &str) -> Result<()> {
        self.remove_agent_object(name).await?;
        self.unlist_agent(name).await
    }

    /// Removes a name from the register only (an agent whose object is gone: one half
    /// deregistered).
    pub(super) async fn unlist_agent(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.objs
            .update::<AgentRegister, _>(AGENT_REGISTER, |reg| {
                reg.agents.retain(|a| *a != name);
                Ok(((), Write::Commit))
            })
            .await?;
        Ok(())
    }

    /// Adds (`add`) or removes names from an agent's intent log and refreshes its heartbeat.
    pub(super) async fn log(&self, agent: &str, names: &[String], add: bool, now: Timestamp) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let found = self
            .objs
            .update::<Agent, _>(agent, |a| {
                if add {
                    let mut present: HashSet<&str> = a.owned.iter().map(String::as_str).collect();
                    let fresh: Vec<String> = names.iter().filter(|n| present.insert(n.as_str())).cloned().collect();
                    a.owned.extend(fresh);
                } else {
                    let gone: HashSet<&str> = names.iter().map(String::as_str).collect();
                    a.owned.retain(|n| !gone.contains(n.as_str()));
                }
                a.heartbeat = a.heartbeat.max(now);
                Ok(((), Write::Commit))
            })
            .await?;
        found.ok_or_else(|| Error::not_found(format!("agent {agent:?} does not exist")))
    }

    /// Refreshes an agent's heartbeat.
    pub(super) async fn touch(&self, agent: &str, now: Timestamp) -> Result<()> {
        self.objs
            .update::<Agent, _>(agent, |a| {
                a.heartbeat = a.heartbeat.max(now);
                Ok(((), Write::Commit))
            })
            .await?
            .ok_or_else(|| Error::not_found(format!("agent {agent:?} does not exist")))
    }

    pub(super) async fn mount_agent(&self, mount: MountId) -> Result<(String, Agent, MountRecord)> {
        let name = mount_agent_name(mount);
        let agent = self
            .objs
            .read::<Agent>(&name)
            .await?
            .ok_or_else(|| Error::not_found(format!("mount {mount} does not exist or has ended")))?;
        let record = agent.mount.clone().ok_or_else(|| Error::internal(format!("agent {name:?} records no mount")))?;
        Ok((name, agent, record))
    }

    /// Names of the registered agents.
    pub async fn agents(&self) -> Result<Vec<String>> {
        self.ready().await?;
        Ok(self.objs.read::<AgentRegister>(AGENT_REGISTER).await?.unwrap_or_default().agents)
    }

    pub(super) async fn is_dead(&self, agent: &Agent, now: Timestamp) -> bool {
        agent.gc_needed || self.config.agent_timeout.is_some_and(|t| now - agent.heartbeat > t)
    }
}
