"""Writes the repack compat scenarios (shared catalogue, one file per case). Run from this folder:
`python3 gen.py`; the YAML files are committed, this script only keeps them consistent."""

HEAD = """catalogue:
  disk_instances: [eos]
  virtual_organizations:
    - {name: vo, read_max_drives: 1, write_max_drives: 1}
    - {name: repack_vo, read_max_drives: 1, write_max_drives: 1, is_repack_vo: true}
  logical_libraries: [{name: lib}]
  tape_pools: [{name: pool, vo: vo}, {name: dest, vo: vo}, {name: pool2, vo: vo}]
  storage_classes:
    - {name: sc, nb_copies: 1, vo: vo}
    - {name: sc2, nb_copies: 2, vo: vo}
    - {name: sc3, nb_copies: 1, vo: vo}
  archive_routes:
    - {storage_class: sc, copy_nb: 1, tape_pool: pool}
    - {storage_class: sc, copy_nb: 1, tape_pool: dest, type: repack}
    - {storage_class: sc2, copy_nb: 1, tape_pool: pool}
    - {storage_class: sc2, copy_nb: 1, tape_pool: dest, type: repack}
    - {storage_class: sc2, copy_nb: 2, tape_pool: pool2}
  mount_policies:
    - {name: mp, archive_priority: 1, archive_min_request_age: 0, retrieve_priority: 1, retrieve_min_request_age: 0}
    - {name: repack, archive_priority: 2, archive_min_request_age: 0, retrieve_priority: 2, retrieve_min_request_age: 0}
  mount_rules: [{kind: requester, disk_instance: eos, name: default, mount_policy: mp}]
  tapes:
    - {vid: V1, tape_pool: pool, logical_library: lib, capacity_bytes: 10000000000, data_on_tape_bytes: 3000, last_fseq: FSEQ1, full: true, state: REPACKING, state_reason: repack}
    - {vid: V2, tape_pool: pool, logical_library: lib, capacity_bytes: 10000000000, data_on_tape_bytes: 2000, last_fseq: FSEQ2, full: true, state: REPACKING, state_reason: repack}
    - {vid: A1, tape_pool: pool, logical_library: lib, capacity_bytes: 10000000000, data_on_tape_bytes: 0, last_fseq: 0, full: true}
    - {vid: D1, tape_pool: dest, logical_library: lib, capacity_bytes: 10000000000}
    - {vid: T2, tape_pool: pool2, logical_library: lib, capacity_bytes: 10000000000, data_on_tape_bytes: 1000, last_fseq: 10}
  drives: [{name: drive0, logical_library: lib}, {name: drive1, logical_library: lib}]
  files:
"""

# A repack report step (the step's expectation follows).
R = "op: report, kind: repack"


def f(id, vid, fseq, sc="sc", size=1000, extra=""):
    return (
        f"    - {{archive_file_id: {id}, size: {size}, storage_class: {sc}, "
        f"copies: [{{copy_nb: 1, vid: {vid}, fseq: {fseq}, block_id: {fseq}}}{extra}]}}\n"
    )


def write(name, title, desc, files, steps, fseq1=3, fseq2=2):
    body = f"version: 1\nname: {title}\ndescription: >\n" + "".join("  " + l + "\n" for l in desc.strip().split("\n"))
    body += HEAD.replace("FSEQ1", str(fseq1)).replace("FSEQ2", str(fseq2))
    body += "".join(files) + "steps:\n" + steps
    open(name, "w").write(body)


three = [f(1, "V1", 1), f(2, "V1", 2), f(3, "V1", 3)]
SECOND = ", {copy_nb: 2, vid: T2, fseq: 10, block_id: 0}"

write("move.yaml", "repack-move",
"""A move repack from request to Complete (spec 1.16, 2.10): queued Pending, promoted and expanded
into one retrieve subrequest per file on the REPACKING tape, recalled by a Retrieve mount charged
to the repack VO, turned into ArchiveForRepack jobs to the REPACK route's pool by the repack report
pass, written, counted. The catalogue then holds the copies on D1; while the repack exists the
tape cannot leave REPACKING, once it is removed it can.""", three, f"""  - {{op: queue_repack, vid: V1, type: move, mount_policy: repack, buffer_url: "file:///buffer"}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, status: Pending, files_to_retrieve: 0}}]}}}}
  - {{op: expand_repack, expect: {{expanded: [V1]}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, status: Starting, files_to_retrieve: 3, files_to_archive: 3, files_retrieved: 0, files_archived: 0, files_failed: 0}}]}}}}
  - {{op: list_pending, kind: retrieve, vid: V1, expect: {{archive_file_ids: [1, 2, 3]}}}}
  - {{op: expand_repack, expect: {{expanded: []}}}}
    # Expansion is done: a second pass has nothing to do.
  - {{at: 10, op: next_mount, drive: drive0, expect: {{mount: {{type: Retrieve, vid: V1, tape_pool: pool}}}}}}
  - {{op: pop_jobs, drive: drive0, max_files: 10, max_bytes: 1000000, expect: {{count: 3, archive_file_ids: [1, 2, 3]}}}}
  - {{op: complete_jobs, drive: drive0, outcome: success}}
  - {{op: end_mount, drive: drive0, expect: {{requeued: 0}}}}
  - {{op: report, kind: archive, expect: {{reports: []}}}}
  - {{op: report, kind: retrieve, expect: {{reports: []}}}}
    # Repack subrequests never report to the disk side.
  - {{at: 11, {R}, expect: {{reports: [{{archive_file_id: 1, kind: retrieve, outcome: success}}, {{archive_file_id: 2, kind: retrieve, outcome: success}}, {{archive_file_id: 3, kind: retrieve, outcome: success}}]}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, status: Running, files_retrieved: 3, files_archived: 0}}]}}}}
  - {{op: show_queues, expect: {{queues: [{{mount_type: ArchiveForRepack, tape_pool: dest, files_queued: 3, bytes_queued: 3000, current_mounts: 0, oldest_job_age: 0}}]}}}}
  - {{op: list_pending, kind: archive, tape_pool: dest, expect: {{archive_file_ids: [1, 2, 3]}}}}
  - {{at: 20, op: next_mount, drive: drive0, expect: {{mount: {{type: ArchiveForRepack, vid: D1, tape_pool: dest}}}}}}
  - {{op: pop_jobs, drive: drive0, max_files: 10, max_bytes: 1000000, expect: {{count: 3, archive_file_ids: [1, 2, 3]}}}}
  - {{op: complete_jobs, drive: drive0, outcome: success}}
  - {{op: end_mount, drive: drive0, expect: {{requeued: 0}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, status: Running, files_archived: 0}}]}}}}
  - {{at: 21, op: report, expect: {{reports: [{{archive_file_id: 1, kind: archive, outcome: success}}, {{archive_file_id: 2, kind: archive, outcome: success}}, {{archive_file_id: 3, kind: archive, outcome: success}}]}}}}
    # `report` (kind all) processes repack reports too.
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, status: Complete, files_to_retrieve: 3, files_to_archive: 3, files_retrieved: 3, files_archived: 3, files_failed: 0}}]}}}}
  - {{op: show_queues, expect: {{queues: []}}}}
  - {{op: list_failed, kind: archive, expect: {{archive_file_ids: []}}}}
  - {{op: change_tape_state, vid: V1, state: ACTIVE, expect: {{error: state_transition_refused}}}}
  - {{op: cancel_repack, vid: V1}}
  - {{op: show_repacks, expect: {{repacks: []}}}}
  - {{op: change_tape_state, vid: V1, state: ACTIVE, expect: {{state: ACTIVE}}}}
  - {{op: queue_retrieve, archive_file_id: 2, requester: {{name: alice, group: it}}, expect: {{vid: D1}}}}
""")

write("add-copies.yaml", "repack-add-copies",
"""An add_copies repack writes only the copies the storage class wants and the file lacks: file 1
(sc2, two copies wanted, one on V1) gets copy 2 in pool2 through its DEFAULT route; file 2 already
has both copies and is not selected; file 3 (sc, one copy) needs nothing. The copy on V1 stays.""",
[f(1, "V1", 1, "sc2"), f(2, "V1", 2, "sc2", extra=SECOND), f(3, "V1", 3)],
f"""  - {{op: queue_repack, vid: V1, type: add_copies, mount_policy: repack}}
  - {{op: expand_repack, expect: {{expanded: [V1]}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, status: Starting, files_to_retrieve: 1, files_to_archive: 1}}]}}}}
  - {{op: list_pending, kind: retrieve, vid: V1, expect: {{archive_file_ids: [1]}}}}
  - {{at: 10, op: next_mount, drive: drive0, expect: {{mount: {{type: Retrieve, vid: V1, tape_pool: pool}}}}}}
  - {{op: pop_jobs, drive: drive0, max_files: 10, max_bytes: 1000000, expect: {{archive_file_ids: [1]}}}}
  - {{op: complete_jobs, drive: drive0, outcome: success}}
  - {{op: end_mount, drive: drive0}}
  - {{{R}, expect: {{reports: [{{archive_file_id: 1, kind: retrieve, outcome: success}}]}}}}
  - {{op: show_queues, expect: {{queues: [{{mount_type: ArchiveForRepack, tape_pool: pool2, files_queued: 1}}]}}}}
  - {{at: 20, op: next_mount, drive: drive0, expect: {{mount: {{type: ArchiveForRepack, vid: T2, tape_pool: pool2}}}}}}
  - {{op: pop_jobs, drive: drive0, max_files: 10, max_bytes: 1000000, expect: {{archive_file_ids: [1]}}}}
  - {{op: complete_jobs, drive: drive0, outcome: success}}
  - {{op: end_mount, drive: drive0}}
  - {{{R}, expect: {{reports: [{{archive_file_id: 1, kind: archive, outcome: success}}]}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, status: Complete, files_retrieved: 1, files_archived: 1, files_failed: 0}}]}}}}
  - {{op: cancel_repack, vid: V1}}
  - {{op: change_tape_state, vid: V1, state: ACTIVE}}
  - {{op: queue_retrieve, archive_file_id: 1, requester: {{name: alice, group: it}}, vid: T2, expect: {{vid: T2}}}}
  - {{op: queue_retrieve, archive_file_id: 1, requester: {{name: alice, group: it}}, vid: V1, expect: {{vid: V1}}}}
""")

write("move-and-add-copies.yaml", "repack-move-and-add-copies",
"""move_and_add_copies: file 1 (sc2, copy 1 on V1, copy 2 missing) gets copy 1 rewritten to dest
(REPACK route) and copy 2 added to pool2 (DEFAULT route): two copies to archive from one recall,
two ArchiveForRepack queues; each copy is counted when its own report is processed.""",
[f(1, "V1", 1, "sc2")], f"""  - {{op: queue_repack, vid: V1, type: move_and_add_copies, mount_policy: repack}}
  - {{op: expand_repack, expect: {{expanded: [V1]}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, status: Starting, files_to_retrieve: 1, files_to_archive: 2}}]}}}}
  - {{at: 10, op: next_mount, drive: drive0, expect: {{mount: {{type: Retrieve, vid: V1}}}}}}
  - {{op: pop_jobs, drive: drive0, max_files: 10, max_bytes: 1000000, expect: {{archive_file_ids: [1]}}}}
  - {{op: complete_jobs, drive: drive0, outcome: success}}
  - {{op: end_mount, drive: drive0}}
  - {{{R}, expect: {{reports: [{{archive_file_id: 1, kind: retrieve, outcome: success}}]}}}}
  - {{op: show_queues, expect: {{queues: [{{mount_type: ArchiveForRepack, tape_pool: dest, files_queued: 1}}, {{mount_type: ArchiveForRepack, tape_pool: pool2, files_queued: 1}}]}}}}
  - {{at: 20, op: next_mount, drive: drive0, expect: {{mount: {{type: ArchiveForRepack, vid: D1, tape_pool: dest}}}}}}
  - {{op: pop_jobs, drive: drive0, max_files: 10, max_bytes: 1000000, expect: {{archive_file_ids: [1]}}}}
  - {{op: complete_jobs, drive: drive0, outcome: success}}
  - {{op: end_mount, drive: drive0}}
  - {{{R}, expect: {{reports: [{{archive_file_id: 1, kind: archive, outcome: success}}]}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, status: Running, files_archived: 1}}]}}}}
  - {{at: 30, op: next_mount, drive: drive0, expect: {{mount: {{type: ArchiveForRepack, vid: T2, tape_pool: pool2}}}}}}
  - {{op: pop_jobs, drive: drive0, max_files: 10, max_bytes: 1000000, expect: {{archive_file_ids: [1]}}}}
  - {{op: complete_jobs, drive: drive0, outcome: success}}
  - {{op: end_mount, drive: drive0}}
  - {{{R}, expect: {{reports: [{{archive_file_id: 1, kind: archive, outcome: success}}]}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, status: Complete, files_retrieved: 1, files_archived: 2, files_failed: 0}}]}}}}
""")

write("no-recall-without-folder.yaml", "repack-no-recall-without-folder",
"""no_recall archives only files an operator already put in the tape's buffer folder; with no
folder the request is refused (not_found, naming the folder) and nothing is queued.""",
three, """  - {op: queue_repack, vid: V1, type: move, mount_policy: repack, buffer_url: "file:///buffer", no_recall: true, expect: {error: not_found}}
  - {op: show_repacks, expect: {repacks: []}}
  - {op: show_queues, expect: {queues: []}}
  - {op: expand_repack, expect: {expanded: []}}
""")

write("no-recall-with-user-provided-files.yaml", "repack-no-recall-with-user-provided-files",
"""A first repack recalls files 1 and 2 into the buffer and is cancelled before they are archived
(its queued subrequests go, the buffer files stay). A no_recall repack of the same tape then
finds them: they are user-provided files, reported to the repack at once without a mount, and
archived; file 3, not in the buffer, is not selected.""",
three, f"""  - {{op: queue_repack, vid: V1, type: move, mount_policy: repack, buffer_url: "file:///buffer"}}
  - {{op: expand_repack, expect: {{expanded: [V1]}}}}
  - {{at: 10, op: next_mount, drive: drive0, expect: {{mount: {{type: Retrieve, vid: V1}}}}}}
  - {{op: pop_jobs, drive: drive0, max_files: 2, max_bytes: 1000000, expect: {{archive_file_ids: [1, 2]}}}}
  - {{op: complete_jobs, drive: drive0, outcome: success}}
  - {{op: end_mount, drive: drive0, expect: {{requeued: 0}}}}
  - {{op: cancel_repack, vid: V1}}
  - {{op: show_repacks, expect: {{repacks: []}}}}
  - {{op: list_pending, kind: retrieve, vid: V1, expect: {{archive_file_ids: []}}}}
  - {{{R}, expect: {{reports: []}}}}
  - {{at: 20, op: queue_repack, vid: V1, type: move, mount_policy: repack, buffer_url: "file:///buffer", no_recall: true}}
  - {{op: expand_repack, expect: {{expanded: [V1]}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, status: Starting, files_to_retrieve: 2, files_to_archive: 2, files_retrieved: 0}}]}}}}
  - {{op: list_pending, kind: retrieve, vid: V1, expect: {{archive_file_ids: []}}}}
  - {{{R}, expect: {{reports: [{{archive_file_id: 1, kind: retrieve, outcome: success}}, {{archive_file_id: 2, kind: retrieve, outcome: success}}]}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, status: Running, files_retrieved: 2}}]}}}}
  - {{at: 30, op: next_mount, drive: drive0, expect: {{mount: {{type: ArchiveForRepack, vid: D1, tape_pool: dest}}}}}}
  - {{op: pop_jobs, drive: drive0, max_files: 10, max_bytes: 1000000, expect: {{archive_file_ids: [1, 2]}}}}
  - {{op: complete_jobs, drive: drive0, outcome: success}}
  - {{op: end_mount, drive: drive0}}
  - {{{R}, expect: {{reports: [{{archive_file_id: 1, kind: archive, outcome: success}}, {{archive_file_id: 2, kind: archive, outcome: success}}]}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, status: Complete, files_to_retrieve: 2, files_retrieved: 2, files_archived: 2}}]}}}}
  - {{op: queue_repack, vid: V1, type: move, mount_policy: repack, no_recall: true, expect: {{error: conflict}}}}
""")

write("max-files.yaml", "repack-max-files",
"""max_files selects the first N files of the tape by fSeq; expansion is then done.""",
three, """  - {op: queue_repack, vid: V1, type: move, mount_policy: repack, max_files: 2}
  - {op: expand_repack, expect: {expanded: [V1]}}
  - {op: show_repacks, expect: {repacks: [{vid: V1, status: Starting, files_to_retrieve: 2, files_to_archive: 2}]}}
  - {op: list_pending, kind: retrieve, vid: V1, expect: {archive_file_ids: [1, 2]}}
  - {op: expand_repack, expect: {expanded: []}}
  - {op: show_queues, expect: {queues: [{mount_type: Retrieve, tape_pool: pool, vid: V1, files_queued: 2, bytes_queued: 2000}]}}
""")

write("storage-class-filter.yaml", "repack-storage-class-filter",
"""With storage_class, only the tape's files of that class are selected; an unknown class is
invalid_argument.""",
[f(1, "V1", 1, "sc2"), f(2, "V1", 2), f(3, "V1", 3, "sc2")], """  - {op: queue_repack, vid: V1, type: move, mount_policy: repack, storage_class: sc2}
  - {op: expand_repack, expect: {expanded: [V1]}}
  - {op: show_repacks, expect: {repacks: [{vid: V1, status: Starting, files_to_retrieve: 2, files_to_archive: 2}]}}
  - {op: list_pending, kind: retrieve, vid: V1, expect: {archive_file_ids: [1, 3]}}
  - {op: queue_repack, vid: V2, type: move, mount_policy: repack, storage_class: nope, expect: {error: invalid_argument}}
""")

write("missing-route.yaml", "repack-missing-route",
"""A storage class without the routes the repack needs is refused before anything is queued: sc3
has no route at all, so a move of its copy 1 cannot be written anywhere (invalid_argument, nothing
queued). Restricted to class sc, whose routes exist, the same tape is accepted.""",
[f(1, "V1", 1, "sc3"), f(2, "V1", 2), f(3, "V1", 3)], """  - {op: queue_repack, vid: V1, type: move, mount_policy: repack, expect: {error: invalid_argument}}
  - {op: show_repacks, expect: {repacks: []}}
  - {op: show_queues, expect: {queues: []}}
  - {op: queue_repack, vid: V1, type: move, mount_policy: repack, storage_class: sc}
  - {op: expand_repack, expect: {expanded: [V1]}}
  - {op: show_repacks, expect: {repacks: [{vid: V1, status: Starting, files_to_retrieve: 2}]}}
""")

write("bad-input.yaml", "repack-bad-input",
"""Unknown VID, a tape that is not REPACKING, a buffer URL that is not a URL, an unknown mount
policy, a second repack of the same tape, a malformed VID: each a named error kind, and nothing
queued. Repack reports are processed, not delivered: `delivery: fail` does not apply to them.""",
three, """  - {op: queue_repack, vid: NOPE, type: move, mount_policy: repack, expect: {error: not_found}}
  - {op: queue_repack, vid: A1, type: move, mount_policy: repack, expect: {error: invalid_argument}}
  - {op: queue_repack, vid: D1, type: move, mount_policy: repack, expect: {error: invalid_argument}}
  - {op: queue_repack, vid: V1, type: move, mount_policy: repack, buffer_url: "not a url", expect: {error: invalid_argument}}
  - {op: queue_repack, vid: V1, type: move, mount_policy: repack, buffer_url: "buffer", expect: {error: invalid_argument}}
  - {op: queue_repack, vid: V1, type: move, mount_policy: nope, expect: {error: invalid_argument}}
  - {op: show_repacks, expect: {repacks: []}}
  - {op: queue_repack, vid: V1, type: move, mount_policy: repack}
  - {op: queue_repack, vid: V1, type: add_copies, mount_policy: repack, expect: {error: conflict}}
  - {op: show_repacks, expect: {repacks: [{vid: V1, status: Pending}]}}
  - {op: cancel_repack, vid: V2, expect: {error: not_found}}
  - {op: cancel_repack, vid: "bad vid", expect: {error: invalid_argument}}
  - {op: report, kind: repack, delivery: fail, expect: {error: invalid_argument}}
""")

many = [f(i, "V1", i, size=10) for i in range(1, 503)]
write("expansion-in-passes.yaml", "repack-expansion-in-passes",
"""Expansion reads the tape a pass at a time (500 files per pass by default) from the repack's
last expanded fSeq: the first expand_repack queues files 1-500 and the request stays Starting
with its expansion not done; the second continues at fSeq 501. With max_requests 1 only one
repack is expanded at a time (oldest first): V2 waits Pending until V1's expansion is done, then
is promoted and, holding no file, completes at once.""",
many, """  - {op: queue_repack, vid: V1, type: move, mount_policy: repack}
  - {op: queue_repack, vid: V2, type: move, mount_policy: repack}
  - {op: expand_repack, max_requests: 1, expect: {expanded: [V1]}}
  - {op: show_repacks, expect: {repacks: [{vid: V1, status: Starting, files_to_retrieve: 500, files_to_archive: 500}, {vid: V2, status: Pending}]}}
  - {op: show_queues, expect: {queues: [{mount_type: Retrieve, tape_pool: pool, vid: V1, files_queued: 500, bytes_queued: 5000}]}}
  - {op: expand_repack, max_requests: 1, expect: {expanded: [V1]}}
  - {op: show_repacks, expect: {repacks: [{vid: V1, status: Starting, files_to_retrieve: 502, files_to_archive: 502}, {vid: V2, status: Pending}]}}
  - {op: expand_repack, max_requests: 1, expect: {expanded: [V2]}}
  - {op: show_repacks, expect: {repacks: [{vid: V1, status: Starting, files_to_retrieve: 502}, {vid: V2, status: Complete, files_to_retrieve: 0}]}}
  - {op: expand_repack, expect: {expanded: []}}
  - {op: show_queues, expect: {queues: [{mount_type: Retrieve, tape_pool: pool, vid: V1, files_queued: 502, bytes_queued: 5020}]}}
""", fseq1=502, fseq2=0)

write("recall-failure.yaml", "repack-recall-failure",
"""A repack recall fails for good at its first failure (repack retrieve limits: 1 per mount, 1 in
total). The repack report pass counts it as failed and abandons its copy; the other file goes on,
and the repack ends Failed once everything is accounted for. Nothing lands in the user failed
lists.""",
[f(1, "V1", 1), f(2, "V1", 2)], f"""  - {{op: queue_repack, vid: V1, type: move, mount_policy: repack}}
  - {{op: expand_repack, expect: {{expanded: [V1]}}}}
  - {{at: 10, op: next_mount, drive: drive0, expect: {{mount: {{type: Retrieve, vid: V1}}}}}}
  - {{op: pop_jobs, drive: drive0, max_files: 10, max_bytes: 1000000, expect: {{archive_file_ids: [1, 2]}}}}
  - {{op: complete_jobs, drive: drive0, archive_file_ids: [1], outcome: failure, reason: read error}}
  - {{op: complete_jobs, drive: drive0, archive_file_ids: [2], outcome: success}}
  - {{op: pop_jobs, drive: drive0, max_files: 10, max_bytes: 1000000, expect: {{count: 0}}}}
  - {{op: end_mount, drive: drive0, expect: {{requeued: 0}}}}
  - {{op: list_failed, kind: retrieve, expect: {{archive_file_ids: []}}}}
  - {{{R}, expect: {{reports: [{{archive_file_id: 1, kind: retrieve, outcome: failure}}, {{archive_file_id: 2, kind: retrieve, outcome: success}}]}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, status: Running, files_retrieved: 1, files_failed: 1}}]}}}}
  - {{at: 20, op: next_mount, drive: drive0, expect: {{mount: {{type: ArchiveForRepack, vid: D1}}}}}}
  - {{op: pop_jobs, drive: drive0, max_files: 10, max_bytes: 1000000, expect: {{archive_file_ids: [2]}}}}
  - {{op: complete_jobs, drive: drive0, outcome: success}}
  - {{op: end_mount, drive: drive0}}
  - {{{R}, expect: {{reports: [{{archive_file_id: 2, kind: archive, outcome: success}}]}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, status: Failed, files_to_retrieve: 2, files_to_archive: 2, files_retrieved: 1, files_archived: 1, files_failed: 1}}]}}}}
  - {{op: list_failed, kind: retrieve, expect: {{archive_file_ids: []}}}}
  - {{op: list_failed, kind: archive, expect: {{archive_file_ids: []}}}}
""")

write("archive-failure.yaml", "repack-archive-failure",
"""A repack archive job retries like a user archive (2 per mount, 2 in total): the first failure
requeues it, the second fails it for good and its report goes to the repack, which counts it and
ends Failed. Failed repack copies are not in the user failed list.""",
[f(1, "V1", 1)], f"""  - {{op: queue_repack, vid: V1, type: move, mount_policy: repack}}
  - {{op: expand_repack, expect: {{expanded: [V1]}}}}
  - {{at: 10, op: next_mount, drive: drive0, expect: {{mount: {{type: Retrieve, vid: V1}}}}}}
  - {{op: pop_jobs, drive: drive0, max_files: 10, max_bytes: 1000000, expect: {{archive_file_ids: [1]}}}}
  - {{op: complete_jobs, drive: drive0, outcome: success}}
  - {{op: end_mount, drive: drive0}}
  - {{{R}, expect: {{reports: [{{archive_file_id: 1, kind: retrieve, outcome: success}}]}}}}
  - {{at: 20, op: next_mount, drive: drive0, expect: {{mount: {{type: ArchiveForRepack, vid: D1}}}}}}
  - {{op: pop_jobs, drive: drive0, max_files: 10, max_bytes: 1000000, expect: {{archive_file_ids: [1]}}}}
  - {{op: complete_jobs, drive: drive0, outcome: failure, reason: write error 1}}
  - {{op: pop_jobs, drive: drive0, max_files: 10, max_bytes: 1000000, expect: {{archive_file_ids: [1]}}}}
  - {{op: complete_jobs, drive: drive0, outcome: failure, reason: write error 2}}
  - {{op: end_mount, drive: drive0, expect: {{requeued: 0}}}}
  - {{op: report, kind: archive, expect: {{reports: []}}}}
  - {{{R}, expect: {{reports: [{{archive_file_id: 1, kind: archive, outcome: failure}}]}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, status: Failed, files_retrieved: 1, files_archived: 0, files_failed: 1}}]}}}}
  - {{op: list_failed, kind: archive, expect: {{archive_file_ids: []}}}}
  - {{op: show_queues, expect: {{queues: []}}}}
""")

write("cancel-at-each-status.yaml", "repack-cancel-at-each-status",
"""cancel_repack deletes the request and every subrequest wherever it is, on every backend (CTA's
objectstore left the retrieve queue full; we do not): at Pending; at Starting with recalls queued;
while a mount holds recalls (the mount's later success is ignored); at Running with re-archives
queued; and once Complete (the request is removed).""",
[f(1, "V1", 1), f(2, "V1", 2), f(3, "V1", 3), f(4, "V2", 1), f(5, "V2", 2)], f"""  - {{op: queue_repack, vid: V1, type: move, mount_policy: repack}}
  - {{op: cancel_repack, vid: V1}}
  - {{op: show_repacks, expect: {{repacks: []}}}}
  - {{op: queue_repack, vid: V1, type: move, mount_policy: repack}}
  - {{op: expand_repack, expect: {{expanded: [V1]}}}}
  - {{op: show_queues, expect: {{queues: [{{mount_type: Retrieve, vid: V1, files_queued: 3}}]}}}}
  - {{op: cancel_repack, vid: V1}}
  - {{op: show_queues, expect: {{queues: []}}}}
  - {{op: list_pending, kind: retrieve, vid: V1, expect: {{archive_file_ids: []}}}}
  - {{op: queue_repack, vid: V1, type: move, mount_policy: repack}}
  - {{op: expand_repack, expect: {{expanded: [V1]}}}}
  - {{at: 10, op: next_mount, drive: drive0, expect: {{mount: {{type: Retrieve, vid: V1}}}}}}
  - {{op: pop_jobs, drive: drive0, max_files: 2, max_bytes: 1000000, expect: {{archive_file_ids: [1, 2]}}}}
  - {{op: cancel_repack, vid: V1}}
  - {{op: complete_jobs, drive: drive0, outcome: success}}
  - {{op: end_mount, drive: drive0, expect: {{requeued: 0}}}}
  - {{{R}, expect: {{reports: []}}}}
  - {{op: show_queues, expect: {{queues: []}}}}
  - {{op: queue_repack, vid: V2, type: move, mount_policy: repack}}
  - {{op: expand_repack, expect: {{expanded: [V2]}}}}
  - {{at: 20, op: next_mount, drive: drive0, expect: {{mount: {{type: Retrieve, vid: V2}}}}}}
  - {{op: pop_jobs, drive: drive0, max_files: 10, max_bytes: 1000000, expect: {{archive_file_ids: [4, 5]}}}}
  - {{op: complete_jobs, drive: drive0, outcome: success}}
  - {{op: end_mount, drive: drive0}}
  - {{{R}, expect: {{reports: [{{archive_file_id: 4, kind: retrieve, outcome: success}}, {{archive_file_id: 5, kind: retrieve, outcome: success}}]}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V2, status: Running}}]}}}}
  - {{op: show_queues, expect: {{queues: [{{mount_type: ArchiveForRepack, tape_pool: dest, files_queued: 2}}]}}}}
  - {{op: cancel_repack, vid: V2}}
  - {{op: show_queues, expect: {{queues: []}}}}
  - {{op: list_pending, kind: archive, tape_pool: dest, expect: {{archive_file_ids: []}}}}
  - {{op: queue_repack, vid: V2, type: move, mount_policy: repack, storage_class: sc2}}
  - {{op: expand_repack, expect: {{expanded: [V2]}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V2, status: Complete, files_to_retrieve: 0}}]}}}}
  - {{op: cancel_repack, vid: V2}}
  - {{op: show_repacks, expect: {{repacks: []}}}}
  - {{op: cancel_repack, vid: V2, expect: {{error: not_found}}}}
""")

write("dual-copy-tape-leaves.yaml", "repack-dual-copy-tape-leaves",
"""A dual-copy file loses one of its tapes: V1, holding its copy 1, is repacked (move). User
retrieves meanwhile go to the other copy on T2 (REPACKING tapes are never chosen for users); the
repack rewrites copy 1 to dest and leaves copy 2 alone, so afterwards the file has copies on D1
and T2 and none on V1.""",
[f(1, "V1", 1, "sc2", extra=SECOND)], f"""  - {{op: queue_retrieve, archive_file_id: 1, requester: {{name: alice, group: it}}, expect: {{vid: T2}}}}
  - {{op: cancel_retrieve, archive_file_id: 1}}
  - {{op: queue_repack, vid: V1, type: move, mount_policy: repack}}
  - {{op: expand_repack, expect: {{expanded: [V1]}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, files_to_retrieve: 1, files_to_archive: 1}}]}}}}
  - {{at: 10, op: next_mount, drive: drive0, expect: {{mount: {{type: Retrieve, vid: V1}}}}}}
  - {{op: pop_jobs, drive: drive0, max_files: 10, max_bytes: 1000000, expect: {{archive_file_ids: [1]}}}}
  - {{op: complete_jobs, drive: drive0, outcome: success}}
  - {{op: end_mount, drive: drive0}}
  - {{{R}, expect: {{reports: [{{archive_file_id: 1, kind: retrieve, outcome: success}}]}}}}
  - {{op: show_queues, expect: {{queues: [{{mount_type: ArchiveForRepack, tape_pool: dest, files_queued: 1}}]}}}}
  - {{at: 20, op: next_mount, drive: drive0, expect: {{mount: {{type: ArchiveForRepack, vid: D1, tape_pool: dest}}}}}}
  - {{op: pop_jobs, drive: drive0, max_files: 10, max_bytes: 1000000, expect: {{archive_file_ids: [1]}}}}
  - {{op: complete_jobs, drive: drive0, outcome: success}}
  - {{op: end_mount, drive: drive0}}
  - {{{R}, expect: {{reports: [{{archive_file_id: 1, kind: archive, outcome: success}}]}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, status: Complete}}]}}}}
  - {{op: queue_retrieve, archive_file_id: 1, requester: {{name: alice, group: it}}, vid: D1, expect: {{vid: D1}}}}
  - {{op: queue_retrieve, archive_file_id: 1, requester: {{name: alice, group: it}}, vid: T2, expect: {{vid: T2}}}}
  - {{op: queue_retrieve, archive_file_id: 1, requester: {{name: alice, group: it}}, vid: V1, expect: {{error: not_found}}}}
""")

write("no-recall-max-files.yaml", "repack-no-recall-max-files",
"""max_files counts the files a repack selects after every filter: with no_recall, files not in
the buffer are not counted. Files 2 and 3 are in the buffer (their recall succeeded; file 1's
failed); a no_recall repack with max_files 1 selects file 2.""",
three, f"""  - {{op: queue_repack, vid: V1, type: move, mount_policy: repack, buffer_url: "file:///buffer"}}
  - {{op: expand_repack, expect: {{expanded: [V1]}}}}
  - {{at: 10, op: next_mount, drive: drive0, expect: {{mount: {{type: Retrieve, vid: V1}}}}}}
  - {{op: pop_jobs, drive: drive0, max_files: 10, max_bytes: 1000000, expect: {{archive_file_ids: [1, 2, 3]}}}}
  - {{op: complete_jobs, drive: drive0, archive_file_ids: [1], outcome: failure, reason: read error}}
  - {{op: complete_jobs, drive: drive0, archive_file_ids: [2, 3], outcome: success}}
  - {{op: end_mount, drive: drive0, expect: {{requeued: 0}}}}
  - {{op: cancel_repack, vid: V1}}
  - {{at: 20, op: queue_repack, vid: V1, type: move, mount_policy: repack, buffer_url: "file:///buffer", no_recall: true, max_files: 1}}
  - {{op: expand_repack, expect: {{expanded: [V1]}}}}
  - {{op: show_repacks, expect: {{repacks: [{{vid: V1, status: Starting, files_to_retrieve: 1, files_to_archive: 1}}]}}}}
  - {{{R}, expect: {{reports: [{{archive_file_id: 2, kind: retrieve, outcome: success}}]}}}}
  - {{op: expand_repack, expect: {{expanded: []}}}}
""")
