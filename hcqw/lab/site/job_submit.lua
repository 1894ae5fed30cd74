-- hcqw: the qpu partition admits only jobs that hold the QPU (--gres=qpu:N, N >= 1), so every
-- job SLURM places on a qpu host holds its device and nothing else runs there.

local function asks_qpu(tres)
   if tres == nil then
      return false
   end
   for spec in string.gmatch(tres, "[^,]+") do
      local count = string.match(spec, "^gres:qpu:(%d+)$") or string.match(spec, "^gres:qpu:[^:]+:(%d+)$")
      if spec == "gres:qpu" or (count ~= nil and tonumber(count) > 0) then
         return true
      end
   end
   return false
end

local function in_qpu_partition(partition)
   if partition == nil then
      return false
   end
   for name in string.gmatch(partition, "[^,]+") do
      if name == "qpu" then
         return true
      end
   end
   return false
end

local function holds_qpu(desc)
   return asks_qpu(desc.tres_per_node) or asks_qpu(desc.tres_per_job) or asks_qpu(desc.tres_per_socket)
      or asks_qpu(desc.tres_per_task)
end

local REFUSAL = "the qpu partition admits only jobs that hold the QPU: ask for it with --gres=qpu:1"

function slurm_job_submit(job_desc, part_list, submit_uid)
   if in_qpu_partition(job_desc.partition) and not holds_qpu(job_desc) then
      slurm.log_user(REFUSAL)
      return slurm.ERROR
   end
   return slurm.SUCCESS
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
   if modify_uid == 0 then
      return slurm.SUCCESS
   end
   local changes = job_desc.partition ~= nil or job_desc.tres_per_node ~= nil or job_desc.tres_per_job ~= nil
      or job_desc.tres_per_socket ~= nil or job_desc.tres_per_task ~= nil
   if changes and in_qpu_partition(job_desc.partition or job_rec.partition) and not holds_qpu(job_desc) then
      slurm.log_user(REFUSAL .. " (give it with the change)")
      return slurm.ERROR
   end
   return slurm.SUCCESS
end
